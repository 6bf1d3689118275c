"""Assistant Factory: the shell (sidebar, navigation over the 8-step line) around the chosen page."""
from ui.shell import run_app

run_app()
