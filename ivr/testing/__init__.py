"""Kanaal's testing kit: fakes, fake servers and the call rig, shipped with the package.

Production modules never import from here; only the CLI (``ivr rig``, the Twilio
sandbox command) and tests do. Import the module you need, nothing is re-exported:

* ``fakes``          in-memory fakes for every domain port, sharing one ``Faults`` switch
* ``recognizers``    ``ScriptedRecognizer`` (scripted texts per turn), ``TapRecognizer``
* ``fake_ari``       ``FakeAri``, a local ARI server (REST + events websocket)
* ``fake_agi``       ``FakeAsterisk``, Asterisk's side of FastAGI over TCP
* ``twilio_sandbox`` a local server speaking Twilio's Messages REST API
* ``rig``            the Asterisk + SIPp rig for real calls; ``sipcaller`` places them
  (``sipp`` holds its SIPp scenarios)
* ``postgres``       a throw-away PostgreSQL server
"""
