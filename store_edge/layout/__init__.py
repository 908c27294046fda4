"""Store layout: the file format, its loader and its geometry."""

from store_edge.layout.camera import CameraModel
from store_edge.layout.loader import load_store, load_store_text, parse_store, read_yaml
from store_edge.layout.model import (
    Camera,
    FacingPlacement,
    Gate,
    Gondola,
    Plate,
    PlateGeometry,
    Product,
    Shelf,
    StoreLayout,
)

__all__ = [
    "Camera",
    "CameraModel",
    "FacingPlacement",
    "Gate",
    "Gondola",
    "Plate",
    "PlateGeometry",
    "Product",
    "Shelf",
    "StoreLayout",
    "load_store",
    "load_store_text",
    "parse_store",
    "read_yaml",
]
