"""The review station's Streamlit views. app.py registers them with st.navigation (after its sign-in
check); no file here is a page on its own.

Two guards rest on Streamlit internals (tests/test_security.py holds both, so an upgrade that changes
them fails the suite instead of opening a hole):

- A folder named ``pages/`` beside app.py makes Streamlit, until some session's app.py has called
  st.navigation, run a file in it directly when a freshly started server's first visitor asks for its
  address (``/performance``), without app.py and so without sign-in. The first import of this package
  in such a run switches that off for the process and runs the visit again through app.py.
- Downloads expire: Streamlit serves ``st.download_button``'s file at ``/media/<id>`` to any client
  that has the address, without a session. The app's buttons make their file only when clicked (a
  deferred download, asked for over the clicking session's own websocket), and such a file is removed
  :data:`DOWNLOAD_FUSE_S` seconds after its first fetch (the browser fetches it twice at once: a check
  and the download), so its address answers 404 afterwards.
"""

import os
import threading

from streamlit.runtime.pages_manager import PagesManager

if PagesManager.uses_pages_directory:
    import streamlit as st

    PagesManager.uses_pages_directory = False
    st.rerun()


DOWNLOAD_FUSE_S = 5.0  # a clicked download's life after its first fetch


def one_shot_downloads() -> bool:
    """Make this server's clicked (deferred) downloads expire shortly after their first fetch; True when
    they do (False without a running server, as in AppTest)."""
    from streamlit import runtime

    if not runtime.exists():
        return False
    manager = runtime.get_instance().media_file_mgr
    storage = manager._storage
    if getattr(storage, "downloads_expire", False):
        return True
    clicked: set[str] = set()  # files made by a click, not yet fetched
    make, look_up = manager.execute_deferred, storage.get_file

    def execute_deferred(placeholder: str) -> str:
        url = make(placeholder)
        clicked.add(os.path.splitext(url.rsplit("/", 1)[-1])[0])
        return url

    def get_file(filename: str):
        """The /media/ route's look-up: a clicked download's first fetch lights its fuse."""
        found = look_up(filename)
        file_id = os.path.splitext(filename)[0]
        if file_id in clicked:
            clicked.discard(file_id)
            threading.Timer(DOWNLOAD_FUSE_S, storage.delete_file, (file_id,)).start()
        return found

    manager.execute_deferred, storage.get_file = execute_deferred, get_file
    storage.downloads_expire = True
    return True


one_shot_downloads()
