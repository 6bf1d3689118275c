"""The project as the pages see it: the engine's ``core.project`` (one place for the file, its lock and steps)."""
from core.project import STEPS, load_project, save_project, step_done, update_project  # noqa: F401
