"""OPC UA station adapter: a Machine Vision-style subset of OPC 40100-1 over the one inspection path.

The address space (node ids, browse names, methods, events) and what of the companion
specification is *not* implemented are documented in ``docs/opcua.md``.

* :mod:`.request`: method arguments -> a checked inspection request, or a :class:`~.request.Rejected`
  naming the problem and its OPC UA status (pure, except reading an allowed image file);
* :mod:`.security`: user file (salted scrypt hashes), the user manager, self-signed certificates;
* :mod:`.server`: the asyncua server: VisionSystem state machine, inspection and recipe methods,
  result variables and events, all through the service's
  :class:`~inspection.service.recorder.Recorder` (the same ledger transaction as HTTP and MQTT).
"""

from __future__ import annotations
