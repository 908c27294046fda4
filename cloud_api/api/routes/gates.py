from __future__ import annotations

from fastapi import APIRouter, Path

from cloud_api.api.deps import ContainerDep, DeviceDep
from cloud_api.api.errors import ERRORS
from cloud_api.schemas.gate import ScanIn, ScanOut
from cloud_api.services import checkin

router = APIRouter(prefix="/v1/gates", tags=["gates"])


@router.post("/{gate_id}/scans", responses=ERRORS)
def scan(
    c: ContainerDep,
    device: DeviceDep,
    body: ScanIn,
    gate_id: str = Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"),
) -> ScanOut:
    """A gate scanned a code: open (with a new visit id) or refuse with a reason. A refusal is a
    decision, answered with 200; errors (unknown gate, another store's key) are 4xx."""
    answer = checkin.scan(c, device, gate_id, body.token, body.party_size)
    return ScanOut(**answer.__dict__)
