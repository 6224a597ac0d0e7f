"""Ralph's LRS (`ralph.api:app`) under uvicorn with its file-system backend, for the xAPI tests;
run by the LRS's own Python (`.venv-lrs`, see `tests/lrs.py`): `python tests/lrs_server.py PORT`.

What `ralph runserver --backend fs` does, with one difference: ralph 5.1.0's file-system LRS
writes each POST with operation type "create", which creates its statements file at the first
POST and refuses every later one ("already exists and overwrite is not allowed"), so a second
POST would answer 500. Here it appends, as an LRS keeps statements. No reloader either (one
process to stop)."""

import sys

import uvicorn
from ralph.backends.data.base import BaseOperationType
from ralph.backends.lrs.fs import FSLRSBackend

FSLRSBackend.default_operation_type = BaseOperationType.APPEND

if __name__ == "__main__":
    uvicorn.run("ralph.api:app", host="127.0.0.1", port=int(sys.argv[1]), log_level="info")
