"""Thin helpers shared by app.py and pages/: translations, the saved project, the sidebar, friendly errors.

No training or data logic lives here: that is ``core/``. This package only arranges what the pages show.
"""
from ui.i18n import LANGUAGES, labeler, lang, t  # noqa: F401
from core.project import load_project, save_project, update_project  # noqa: F401
