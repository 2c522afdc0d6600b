"""The HTTP baseline for `decide.py`: a FastAPI app whose decision endpoint does no work at all.

It parses the same body and answers a constant, so wrk against it measures what FastAPI, uvicorn and
loopback cost on this machine, and the service's numbers can be read as a ratio to that floor.
"""

from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI()


class Request(BaseModel):
    citizen_id: str
    service: str


@app.post("/api/v1/decisions")
async def decide(body: Request) -> dict[str, str]:
    return {"citizen_id": body.citizen_id, "service": body.service, "outcome": "allow"}
