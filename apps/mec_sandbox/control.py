"""Sandbox control (not ETSI): the simulated clock, every UE's state, the placement, delivery counters."""

from __future__ import annotations

from .core import Sandbox
from .problems import Problem, json_response, read_body


class ControlApi:
    def __init__(self, sb: Sandbox):
        self.sb = sb

    def _clock_body(self) -> dict:
        sb = self.sb
        return {"simTime": round(sb.mobility.time, 6), "speed": sb.clock.speed, "step": sb.mobility.step,
                "epoch": sb.clock.epoch, "timestamp": sb.ts()}

    async def clock(self, request, q):
        return json_response(self._clock_body())

    async def clock_set(self, request, q):
        body = await read_body(request)
        now = self.sb.mobility.time
        if "advanceBy" in body:
            value = body["advanceBy"]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or value > 86400:
                raise Problem(400, "'advanceBy' must be a number of seconds in [0, 86400]")
            target = now + value
        elif "simTime" in body:
            value = body["simTime"]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not now <= value <= now + 86400:
                raise Problem(400, f"'simTime' must be a number in [{now}, {now + 86400}] (the clock only moves ahead)")
            target = value
        else:
            raise Problem(400, "give 'advanceBy' (seconds) or 'simTime'")
        changes = self.sb.advance_to(target)
        self.sb.clock.jump(max(target, self.sb.mobility.time))
        return json_response(dict(self._clock_body(), changes=len(changes)))

    async def ues(self, request, q):
        out = []
        for name, st in self.sb.mobility.states.items():
            if "address" in q and name not in q["address"]:
                continue
            lon, lat = self.sb.mobility.lonlat(name)
            out.append({"address": name, "accessPointId": st.poa, "zoneId": st.zone, "cellId": st.cell,
                        "mecHost": st.host, "longitude": round(lon, 6), "latitude": round(lat, 6)})
        return json_response({"simTime": self.sb.mobility.time, "ues": out})

    async def placement(self, request, q):
        return json_response({"placement": self.sb.placement.mode, "hosts": self.sb.placement.hosts(),
                              "zoneToHost": self.sb.placement.zone_to_host})

    async def notifications(self, request, q):
        return json_response(dict(self.sb.notifier.stats))

    async def not_implemented(self, request, q):
        raise Problem(501, f"{request.method} {request.path} is not implemented by this sandbox")
