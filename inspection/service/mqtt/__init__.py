"""MQTT station adapter: stations publish seam photos to a broker, results come back on topics.

The protocol (topics ``weldinspect/v1/<station>/{image,result,error,status}``, metadata in MQTT v5
user properties, delivery and idempotency rules, the ACL) is documented in ``docs/mqtt.md``.

* :mod:`.topics`: topic names of one station and the station-id rule;
* :mod:`.broker`: where and how to connect (URL, TLS, credentials, session);
* :mod:`.request`: one received message -> a checked inspection request, or a rejection (pure);
* :mod:`.handler`: a request -> the replies to publish, through the service's
  :class:`~inspection.service.recorder.Recorder` (the one inspection + ledger path);
* :mod:`.adapter`: the paho-mqtt client: subscription, worker thread, manual acknowledgement.
"""

from __future__ import annotations
