"""pyghmi's fake BMC, taught DCMI Get Power Reading (fakebmc does not
answer it): the real IPMI v2 / RMCP+ peer of agent's IPMI tests.

Usage: python3 dcmibmc.py PORT WATTS   (user admin, password password)
"""
import struct
import sys
import time

import pyghmi.ipmi.bmc as bmc


class DCMIBmc(bmc.Bmc):
    watts = 0

    def get_power_state(self):
        return 'on'

    def handle_raw_request(self, request, session):
        # DCMI (net function 0x2c) Get Power Reading (command 0x02): group
        # extension 0xdc; current, minimum, maximum, average watts (2 bytes
        # each, little-endian); timestamp (4); sampling period in ms (4);
        # reading state (0x40 = active).
        if request['netfn'] == 0x2c and request['command'] == 0x02:
            w = self.watts
            data = struct.pack('<BHHHHIIB', 0xdc, w, w - 5, w + 5, w, int(time.time()), 1000, 0x40)
            session.send_ipmi_response(data=list(data))
            return
        return super().handle_raw_request(request, session)


if __name__ == '__main__':
    DCMIBmc.watts = int(sys.argv[2])
    DCMIBmc({'admin': 'password'}, port=int(sys.argv[1])).listen()
