"""Assistant Factory: the shell (sidebar, navigation over the 8-step line) around the chosen page."""
import streamlit as st

from ui.common import show_error
from ui.shell import SHELL_DRAWN, draw_shell

page = draw_shell()
st.session_state[SHELL_DRAWN] = True
try:
    page.run()
except Exception as exc:  # noqa: BLE001 - st.rerun/st.stop are BaseException and pass through untouched
    show_error(exc)
