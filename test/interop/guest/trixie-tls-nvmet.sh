#!/bin/bash
# Guest script (trixie image: kernel 6.12, tlshd): the Linux kernel's target (nvmet) with
# a TLS 1.3 port, for the project's host library on the host to connect to (an
# independent target: nvmet-tcp, tlshd on the server side, gnutls). The test forwards
# host 127.0.0.1 ports to guest port 4421 (nvmet) and 5000 (the "done" signal).
# Prints NVMET-READY once nvmet listens, waits until the host connects to port 5000,
# then shows what the kernel and tlshd saw. CHECK lines as in the other guest scripts.
#
# Env: SUB_TLS   the subsystem (a 64 MiB memory-backed namespace) on port 4421, TLS only
#      HOST_TLS  the only host allowed; its PSK from TLS_KEY is in the .nvme keyring,
#                for SUB_TLS and for the discovery subsystem (discovery over TLS)
#      TLS_KEY   the interchange key
set -u
# shellcheck source=lib.sh
source /guest/lib.sh || exit 2

step "nvmet: $SUB_TLS on $GUEST_IP:4421, TLS 1.3 required, host $HOST_TLS"
echo "kernel $(uname -r), tlshd pid $(cat /run/tlshd.pid 2>/dev/null)"
if nvmet-setup --nqn "$SUB_TLS" --addr "$GUEST_IP" --port 4421 --size-mb 64 --tls --tls-key "$TLS_KEY" \
	--host "$HOST_TLS" &&
	nvme-tls-psk --insert "$HOST_TLS" nqn.2014-08.org.nvmexpress.discovery "$TLS_KEY" >/dev/null; then
	port=$(grep -l 4421 /sys/kernel/config/nvmet/ports/*/addr_trsvcid | head -n1 | xargs dirname)
	echo "  port $port: tsas $(cat "$port/addr_tsas"), treq $(cat "$port/addr_treq")"
	grep -E ' psk +NVMe0R01 ' /proc/keys | sed 's/^/  /'
	pass nvmet-tls-port
else
	fail nvmet-tls-port "nvmet-setup --tls failed"
fi

handshakes=$(grep -c 'was successful' /run/tlshd.log)
echo "NVMET-READY"
# the host side runs now; it connects to port 5000 when it is done
if timeout 600 nc -l -p 5000 </dev/null >/dev/null; then
	pass host-done
else
	fail host-done "the host never said it was done"
fi

step "what the kernel and tlshd saw"
dmesg | grep -E 'nvmet' | tail -n 20 | sed 's/^/  dmesg: /'
grep -v 'name resolution' /run/tlshd.log | tail -n 20 | sed 's/^/  tlshd: /'
done_handshakes=$(grep -c 'was successful' /run/tlshd.log)
echo "TLSHD-HANDSHAKES $((done_handshakes - handshakes))"
echo "failures: $failures"
exit $((failures > 0))
