"""The Users page's table: roles admins granted, by person."""

from __future__ import annotations

import pandas as pd
from sqlalchemy.orm import Session

from data import repository

GRANT_COLUMNS = ["person", "role", "granted by", "granted"]


def grants_frame(session: Session) -> pd.DataFrame:
    return pd.DataFrame(
        [[g.subject, g.role, g.granted_by, g.granted_at] for g in repository.list_grants(session)],
        columns=GRANT_COLUMNS,
    )
