"""The model-size study (``python -m trainer sweep``); split into modules in the next commit."""

from nanolab.sweep.report import *  # noqa: F403
from nanolab.sweep.report import RECORD_VERSION  # noqa: F401
