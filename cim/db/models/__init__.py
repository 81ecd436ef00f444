"""ORM models of every cim table, one module per domain; importing this fills ``Base.metadata``."""

from cim.db.models.access import ApiKey, AuditLog, ImportJob
from cim.db.models.alarm import Alarm, AlarmRule
from cim.db.models.building import Building, BuildingElement, BuildingStorey, BuildingSurface
from cim.db.models.dataset import DATASET_KINDS, DATASET_STATUSES, CimSetting, Dataset
from cim.db.models.pipe import PipeNode, PipeSegment
from cim.db.models.road import RoadSegment
from cim.db.models.sensor import (
    OBSERVATION_TYPES,
    Datastream,
    FeatureOfInterest,
    HistoricalLocation,
    HistoricalLocationLocation,
    Observation,
    ObservationDaily,
    ObservationHourly,
    ObservedProperty,
    Sensor,
    SensorLocation,
    Thing,
    ThingLocation,
)
from cim.db.models.shelter import (
    HazardZone,
    PopulationUnit,
    Shelter,
    ShelterAssignment,
    ShelterPlan,
    ShelterZone,
)
from cim.db.models.shutdown_plan import PipeShutdownPlan
from cim.db.models.terrain import TerrainRaster
from cim.db.models.tileset import Tileset
from cim.db.models.version import DatasetVersion, FeatureHistory

__all__ = [
    "DATASET_KINDS",
    "DATASET_STATUSES",
    "OBSERVATION_TYPES",
    "Alarm",
    "AlarmRule",
    "ApiKey",
    "AuditLog",
    "Building",
    "BuildingElement",
    "BuildingStorey",
    "BuildingSurface",
    "CimSetting",
    "Dataset",
    "DatasetVersion",
    "Datastream",
    "FeatureHistory",
    "FeatureOfInterest",
    "HazardZone",
    "HistoricalLocation",
    "HistoricalLocationLocation",
    "ImportJob",
    "Observation",
    "ObservationDaily",
    "ObservationHourly",
    "ObservedProperty",
    "PipeNode",
    "PipeSegment",
    "PipeShutdownPlan",
    "PopulationUnit",
    "RoadSegment",
    "Sensor",
    "SensorLocation",
    "Shelter",
    "ShelterAssignment",
    "ShelterPlan",
    "ShelterZone",
    "TerrainRaster",
    "Thing",
    "ThingLocation",
    "Tileset",
]
