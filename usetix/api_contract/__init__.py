"""The JSON API's HTTP contract, pure like ``usetix.core`` (no Flask, no database, no I/O):
``bodies.py``, the pydantic models of what a write may send and what the API answers, and
``openapi.py``, the OpenAPI 3.1 document built from them."""
