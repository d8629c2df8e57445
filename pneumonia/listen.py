"""A DICOM node that scores chest radiographs as they arrive and sends the results on.

    python -m pneumonia.listen --ae-title PNEUMONIA --port 11112 [--dest URL | --dest-ae AE@host:port]

A modality or the PACS forwards CR/DX images to this node (C-STORE). Each is scored as it arrives and
its Structured Report and heatmap Secondary Capture are sent to the destination: a DICOMweb PACS
(``--dest``, default the configured PNEUMONIA_PACS_URL; sign-in from the PNEUMONIA_PACS_* settings)
or a DICOM node (``--dest-ae``, C-STORE). Other modalities are acknowledged and not scored; a
refused or damaged object is logged in words and never stops the node; nothing is sent twice; no
image is kept after scoring. Listens on 127.0.0.1 unless ``--host`` says otherwise. Answers only its
own AE title and, when PNEUMONIA_NODE_CALLING_AES / PNEUMONIA_NODE_ADDRESSES list them, only those
senders (README: Security). Stop with Ctrl-C.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

EXIT_INPUT, EXIT_PACS = 2, 4


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ae-title", default="PNEUMONIA", help="this node's AE title (default PNEUMONIA)")
    p.add_argument("--port", type=int, default=11112, help="DICOM port to listen on (default 11112)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--dest", default=None, help="DICOMweb root that receives the results (STOW-RS)")
    where.add_argument("--dest-ae", default=None, help="DICOM node that receives the results: AE@host:port")
    p.add_argument("--operating-point", default=None, help="the point the SR's result uses (default: the model's)")
    p.add_argument("--model", default=None, help="model folder (default: the shipped models/)")
    return p


def destination(args):
    """The destination the arguments (or the PACS configuration) name; raises ValueError/PacsError in words."""
    from pneumonia.pacs.config import load_config
    from pneumonia.pacs.dicomweb import PacsClient
    from pneumonia.pacs.listener import CStoreDestination, DicomwebDestination, parse_dest_ae

    if args.dest_ae:
        called, host, port = parse_dest_ae(args.dest_ae)
        return CStoreDestination(args.ae_title, called, host, port)
    config = load_config(url=args.dest)
    if config is None:
        raise ValueError("Say where the results go: --dest DICOMWEB_URL, --dest-ae AE@host:port or PNEUMONIA_PACS_URL.")
    client = PacsClient(config)
    client.check()
    return DicomwebDestination(client)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    for chatty in ("pynetdicom", "dicomweb_client"):  # their info output names studies and patient data
        logging.getLogger(chatty).setLevel(logging.WARNING)

    from pneumonia.pacs.config import PacsConfigError, PacsError, node_access
    from pneumonia.pacs.listener import ChestListener
    from pneumonia.pacs.scoring import InstanceScorer
    from pneumonia.serving.model import DEFAULT_MODEL_DIR, Classifier

    try:
        dest = destination(args)
        scorer = InstanceScorer(Classifier(args.model or DEFAULT_MODEL_DIR), args.operating_point)
        access = node_access()  # PNEUMONIA_NODE_CALLING_AES, PNEUMONIA_NODE_ADDRESSES: who may send
    except (ValueError, PacsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_PACS if isinstance(err, PacsError) and not isinstance(err, PacsConfigError) else EXIT_INPUT
    listener = ChestListener(scorer, dest, args.ae_title, args.host, args.port, access)
    try:
        listener.start()
    except OSError as err:
        print(f"error: cannot listen on {args.host}:{args.port} ({err.strerror or err}).", file=sys.stderr)
        return EXIT_INPUT
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    listener.stop()
    print(f"Stopped. {dict(listener.stats)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
