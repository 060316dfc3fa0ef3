"""File I/O: load embeddings from common formats, write results atomically."""
from .indices import load_indices, load_labels, load_mask
from .loaders import SUFFIXES, LoadError, load_embeddings
from .writers import (SUBSET_SUFFIXES, OutputExists, check_outputs, check_writable, count_records,
                      together, write_bytes_atomic, write_json_atomic, write_npy_atomic, write_subset)

__all__ = ["load_embeddings", "load_indices", "load_labels", "load_mask", "LoadError", "SUFFIXES",
           "write_npy_atomic", "write_json_atomic", "write_bytes_atomic", "write_subset",
           "count_records", "check_writable", "check_outputs", "together", "OutputExists",
           "SUBSET_SUFFIXES"]
