"""dataset kind ``pointcloud``: LAS/LAZ point clouds, tiled by py3dtiles

A point cloud dataset keeps no rows of its own: its counts, classes and extent are on the
dataset row, and its source files are kept under ``CIM_DATA_DIR/pointclouds/`` (their paths in
``dataset.options``) so the ``pointcloud`` tiles layer can be rebuilt from them. Downgrade
deletes the ``pointcloud`` datasets before it restores the kinds (their stored files stay).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 10:40:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS_0004 = (
    "('terrain', 'ifc', 'pipes', 'shelters', 'population', 'hazards', 'roads', 'buildings')"
)
KINDS_0007 = (
    "('terrain', 'ifc', 'pipes', 'shelters', 'population', 'hazards', 'roads', 'buildings', "
    "'pointcloud')"
)


def upgrade() -> None:
    op.drop_constraint(op.f("ck_dataset_kind"), "dataset", type_="check")
    op.create_check_constraint(op.f("ck_dataset_kind"), "dataset", f"kind IN {KINDS_0007}")


def downgrade() -> None:
    # Rows of kind 'pointcloud' would violate the old constraint.
    op.execute("DELETE FROM dataset WHERE kind = 'pointcloud'")
    op.execute("DELETE FROM tileset WHERE layer = 'pointcloud'")
    op.drop_constraint(op.f("ck_dataset_kind"), "dataset", type_="check")
    op.create_check_constraint(op.f("ck_dataset_kind"), "dataset", f"kind IN {KINDS_0004}")
