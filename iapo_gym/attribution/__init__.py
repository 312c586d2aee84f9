"""Attribution: the component layout shared by teachers and students, attribution methods for torch
models, and alignment metrics between two attributions."""

from .layout import (
    BLOCK_ORDER,
    Attribution,
    ComponentLayout,
    cells_of_box,
    layout_for_observation,
    pixels_to_cells,
    view_cell_weights,
)
from .methods import (
    METHODS,
    AttributionMethod,
    attention_to_keys,
    attribute,
    default_feature_mask,
    get_method,
    method_names,
    reduce_to_components,
    register_method,
)
from .metrics import (
    DIVERGENCES,
    EPS,
    TORCH_DIVERGENCES,
    cosine_distance,
    cosine_distance_torch,
    divergence,
    js,
    js_torch,
    kl,
    kl_torch,
    topk_overlap,
)

__all__ = [
    "BLOCK_ORDER", "DIVERGENCES", "EPS", "METHODS", "TORCH_DIVERGENCES", "Attribution", "AttributionMethod",
    "ComponentLayout", "attention_to_keys", "attribute", "cells_of_box", "cosine_distance", "cosine_distance_torch",
    "default_feature_mask", "divergence", "get_method", "js", "js_torch", "kl", "kl_torch", "layout_for_observation",
    "method_names", "pixels_to_cells", "reduce_to_components", "register_method", "topk_overlap",
    "view_cell_weights",
]
