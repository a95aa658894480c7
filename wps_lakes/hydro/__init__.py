"""Waterbody split into lakes and rivers, and evaluation against truth (no torch here)."""
from .evaluation import evaluate_detections, evaluate_lakes, evaluate_split, format_table, truth_lake_boxes
from .split import METHODS, SplitParams, SplitResult, split_to_files, split_waterbodies, write_split

__all__ = ["METHODS", "SplitParams", "SplitResult", "evaluate_detections", "evaluate_lakes", "evaluate_split",
           "format_table", "split_to_files", "split_waterbodies", "truth_lake_boxes", "write_split"]
