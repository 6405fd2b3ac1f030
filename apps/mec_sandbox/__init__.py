"""mec_sandbox: a local stand-in for the ETSI MEC Sandbox (AdvantEDGE).

Serves the ETSI MEC Location (MEC 013, location/v2), Radio Network Information (MEC 012, rni/v2) and
Application Mobility (MEC 021, amsi/v1) APIs over an AdvantEDGE scenario whose UEs move in
simulated time. Run with ``PYTHONPATH=apps python -m mec_sandbox --help``.
"""

__version__ = "0.1.0"
