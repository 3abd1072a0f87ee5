"""Python client for Coachdesk.

`Coachdesk` (threads) and `AsyncCoachdesk` (asyncio) log agent interactions and feedback
without slowing the agent down: records go to a bounded in-memory buffer that a background
sender delivers in batches, with retries, backoff and idempotent ids. They also read KPIs
and download retraining batches (checking their sha256).

```python
from coachdesk import Coachdesk

with Coachdesk("https://coachdesk.example.com", token="cd_...", agent="support-bot") as cd:
    iid = cd.log_interaction(input="Where is my parcel?", output="On its way.", confidence=0.42)
    cd.log_feedback(iid, "thumbs_down")
```

Problems with delivery are logged on the `coachdesk` logger and counted in `client.stats`.
"""

from coachdesk._async import AsyncCoachdesk
from coachdesk._sync import Coachdesk
from coachdesk.errors import (
    ApiError,
    BatchNotReady,
    ChecksumMismatch,
    CoachdeskError,
    ConnectionFailed,
)
from coachdesk.models import (
    Batch,
    BatchRequest,
    FeedbackKind,
    KpiRow,
    KpiValue,
    RecordKind,
    Rejection,
    Stats,
)

__version__ = "0.1.0"

__all__ = [
    "ApiError",
    "AsyncCoachdesk",
    "Batch",
    "BatchNotReady",
    "BatchRequest",
    "ChecksumMismatch",
    "Coachdesk",
    "CoachdeskError",
    "ConnectionFailed",
    "FeedbackKind",
    "KpiRow",
    "KpiValue",
    "RecordKind",
    "Rejection",
    "Stats",
    "__version__",
]
