"""Moved (inspect/ keeps capture and the maps; explain/ holds the explanations and their scores, compare/
comparisons across models). This old name stays importable for one release."""
import importlib
import sys

sys.modules[__name__] = importlib.import_module("vitviz.explain.relevance")
