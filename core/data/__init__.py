"""Data engineering: read any upload, measure its quality, fix it, and feed the model the right tokens.

Public API (see the preamble's interface): ``load_conversations``, ``prepare_dataset``, ``load_split`` and the
classes ``DataQualityAnalyzer``, ``AdvancedDataProcessor``, ``SmartDataLoader``, ``DataQualityMonitor``.
"""
from .schema import FORMATS, load_conversations
from .quality import DataQualityAnalyzer
from .processing import AdvancedDataProcessor
from .loader import SmartDataLoader
from .monitor import DataQualityMonitor
from .dataset import load_split, prepare_dataset

__all__ = ["FORMATS", "load_conversations", "prepare_dataset", "load_split", "DataQualityAnalyzer",
           "AdvancedDataProcessor", "SmartDataLoader", "DataQualityMonitor"]
