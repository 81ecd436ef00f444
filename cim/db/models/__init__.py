"""ORM models of every cim table, one module per domain; importing this fills ``Base.metadata``."""

from cim.db.models.access import ApiKey, AuditLog, ImportJob
from cim.db.models.building import Building, BuildingElement, BuildingStorey, BuildingSurface
from cim.db.models.dataset import DATASET_KINDS, DATASET_STATUSES, CimSetting, Dataset
from cim.db.models.pipe import PipeNode, PipeSegment
from cim.db.models.road import RoadSegment
from cim.db.models.shelter import (
    HazardZone,
    PopulationUnit,
    Shelter,
    ShelterAssignment,
    ShelterPlan,
    ShelterZone,
)
from cim.db.models.terrain import TerrainRaster
from cim.db.models.tileset import Tileset

__all__ = [
    "DATASET_KINDS",
    "DATASET_STATUSES",
    "ApiKey",
    "AuditLog",
    "Building",
    "BuildingElement",
    "BuildingStorey",
    "BuildingSurface",
    "CimSetting",
    "Dataset",
    "HazardZone",
    "ImportJob",
    "PipeNode",
    "PipeSegment",
    "PopulationUnit",
    "RoadSegment",
    "Shelter",
    "ShelterAssignment",
    "ShelterPlan",
    "ShelterZone",
    "TerrainRaster",
    "Tileset",
]
