"""A local Shopify emulator speaking the real Admin GraphQL contract and webhook protocol.

Library use (tests): `EmulatorServer(...).start()`; see `emulator.server`.
Control API: see `emulator.control`. Command line: `python -m emulator --help`.
"""

from emulator.client import EmulatorClient, EmulatorError
from emulator.server import EmulatorServer
from emulator.webhooks import sign

__all__ = ["EmulatorClient", "EmulatorError", "EmulatorServer", "sign"]
