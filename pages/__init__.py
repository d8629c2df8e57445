"""The review station's Streamlit views. app.py registers them with st.navigation (after its sign-in
check); no file here is a page on its own.

Two guards rest on Streamlit internals (tests/test_security.py holds both, so an upgrade that changes
them fails the suite instead of opening a hole):

- A folder named ``pages/`` beside app.py makes Streamlit, until some session's app.py has called
  st.navigation, run a file in it directly when a freshly started server's first visitor asks for its
  address (``/performance``), without app.py and so without sign-in. The first import of this package
  in such a run switches that off for the process and runs the visit again through app.py.
- Downloads are handed out once: Streamlit serves ``st.download_button``'s file at ``/media/<id>`` to
  any client that has the address, without a session. The buttons make their file only when clicked
  (a deferred download, asked for over the clicking session's own websocket), and the first fetch of a
  download removes it from the server, so its address answers 404 afterwards.
"""

import os

from streamlit.runtime.pages_manager import PagesManager

if PagesManager.uses_pages_directory:
    import streamlit as st

    PagesManager.uses_pages_directory = False
    st.rerun()


def one_shot_downloads() -> bool:
    """Make this server's downloads expire at their first fetch; True when they do (False without a
    running server, as in AppTest)."""
    from streamlit import runtime
    from streamlit.runtime.media_file_storage import MediaFileKind
    from streamlit.runtime.memory_media_file_storage import get_extension_for_mimetype

    if not runtime.exists():
        return False
    storage = runtime.get_instance().media_file_mgr._storage
    if getattr(storage, "one_shot_downloads", False):
        return True
    look_up = storage.get_file

    def get_file(filename: str):
        """The /media/ route's look-up: a download is forgotten as it is handed out."""
        found = look_up(filename)
        if found.kind == MediaFileKind.DOWNLOADABLE:
            storage.delete_file(os.path.splitext(filename)[0])
        return found

    def get_url(file_id: str) -> str:
        """The address Streamlit gives the browser (the look-up here does not count as a fetch)."""
        return f"{storage._media_endpoint}/{file_id}{get_extension_for_mimetype(look_up(file_id).mimetype)}"

    storage.get_url, storage.get_file = get_url, get_file
    storage.one_shot_downloads = True
    return True


one_shot_downloads()
