from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, Field, PlainSerializer

# Money on the wire: a decimal string with two places ("2.69"), never a float.
Money = Annotated[Decimal, PlainSerializer(lambda d: f"{d:.2f}", return_type=str, when_used="json")]


class ErrorOut(BaseModel):
    message: str = Field(description="what went wrong and what to do about it")
