"""A Peloton-compatible sandbox server with generated data, for development, demos and tests.

Public interface:

* :func:`generate_bundle` and :data:`KINDS`: realistic converter input without HTTP;
* :class:`SandboxConfig`, :class:`SandboxState`: the in-memory world;
* :func:`create_sandbox_app`: the FastAPI app (Auth0 + API + ``/_sandbox`` admin);
* :func:`run_sandbox`: ``async with run_sandbox(state) as base_url:`` serves it in-process.
"""

from service.peloton.sandbox.app import create_sandbox_app
from service.peloton.sandbox.generator import KINDS, generate_bundle
from service.peloton.sandbox.server import run_sandbox
from service.peloton.sandbox.state import SandboxConfig, SandboxState

__all__ = [
    "KINDS",
    "SandboxConfig",
    "SandboxState",
    "create_sandbox_app",
    "generate_bundle",
    "run_sandbox",
]
