// Networking at boot: lo up, then every physical NIC gets a supervised busybox udhcpc that retries
// until it has a lease and keeps renewing it. The udhcpc hook script (written at boot, because the
// initramfs holds init as one bundled file) configures the address, default route and resolv.conf
// with busybox `ip`, and leaves the lease as JSON in /run/zos/net/<nic>.json for NTP and node.info.
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { linkUp } from "../libc.ts";
import { logger } from "../log.ts";
import type { Health } from "../health.ts";
import type { Supervisor } from "../supervisor/supervisor.ts";
import { serviceSpecFrom } from "../supervisor/service-config.ts";

const log = logger("network");
export const leaseDir = "/run/zos/net";
const scriptPath = "/run/zos/udhcpc.script";

export function findBusybox(): string | null {
  return ["/bin/busybox", "/usr/bin/busybox", "/sbin/busybox", "/usr/sbin/busybox"].find((p) => existsSync(p)) ?? null;
}

export function udhcpcScript(busybox: string, paths: { leaseDir: string; resolvConf: string; kmsg?: string } = { leaseDir, resolvConf: "/etc/resolv.conf", kmsg: "/dev/kmsg" }): string {
  return `#!${busybox} sh
# udhcpc hook written by zos init: $1 is deconfig|bound|renew|leasefail|nak; lease fields come as env.
bb=${busybox}
# Each $bb is a fork+exec, slow under emulation; what stands between boot and a reachable node is
# skipped when there is nothing to undo (no lease yet) or to do (the link is up: init set it up).
# init makes the lease directory; the lease file's mtime says when it was written.
leasefile=${paths.leaseDir}/"$interface".json
case "$1" in
  deconfig)
    if [ -e "$leasefile" ]; then $bb ip -4 addr flush dev "$interface"; $bb rm -f "$leasefile"; fi
    read flags < /sys/class/net/"$interface"/flags
    [ $((flags & 1)) = 1 ] || $bb ip link set dev "$interface" up
    ;;
  bound|renew)
    if [ -e "$leasefile" ]; then
      $bb ip -4 addr flush dev "$interface"
      while $bb ip -4 route del default dev "$interface" 2>/dev/null; do :; done
    fi
    $bb ip -4 addr add "$ip/\${mask:-24}" \${broadcast:+broadcast "$broadcast"} dev "$interface"
    for r in $router; do $bb ip -4 route add default via "$r" dev "$interface"; break; done
    if [ -n "$dns" ]; then
      # a renewal writes aside and renames, so no reader sees half a file; before the first lease
      # nothing resolves names yet, and the mv exec is saved
      conf=${paths.resolvConf}
      [ -e "$leasefile" ] && conf=${paths.resolvConf}.zos
      { [ -n "$domain" ] && echo "search $domain"; for d in $dns; do echo "nameserver $d"; done; } > "$conf"
      [ "$conf" = ${paths.resolvConf} ] || $bb mv "$conf" ${paths.resolvConf}
    fi
    printf '{"interface":"%s","ip":"%s","mask":"%s","router":"%s","dns":"%s","ntp":"%s","lease":"%s"}\\n' \\
      "$interface" "$ip" "$mask" "$router" "$dns" "$ntpsrv" "$lease" > "$leasefile"
${paths.kmsg ? `    # on the console with the kernel's timestamp: the boot timeline shows when the node is reachable
    [ "$1" = bound ] && echo "zos-init: network: $interface bound to $ip/\${mask:-24}" > ${paths.kmsg}
` : ""}    ;;
esac
exit 0
`;
}

/** NICs backed by a device (so not lo, bridges, veths, tunnels). */
export function physicalNics(): string[] {
  try {
    return readdirSync("/sys/class/net").filter((n) => n !== "lo" && existsSync(`/sys/class/net/${n}/device`)).sort();
  } catch {
    return [];
  }
}

export interface Lease {
  interface: string;
  ip: string;
  router: string;
  dns: string;
  ntp: string;
}

export function currentLeases(dir = leaseDir): Lease[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((f) => {
    try {
      return [JSON.parse(readFileSync(`${dir}/${f}`, "utf8")) as Lease];
    } catch {
      return [];
    }
  });
}

/** Brings lo up and keeps a dhcp-<nic> service for every NIC, including ones that appear later. */
export function startNetworking(sup: Supervisor, health: Health): void {
  try {
    linkUp("lo");
    health.ok("network-lo");
  } catch (e) {
    log.error("bringing lo up", e);
    health.fail("network-lo", e);
  }
  const busybox = findBusybox();
  if (!busybox) {
    log.error("no busybox in the image: no DHCP client, NICs stay unconfigured");
    health.fail("network-dhcp", "busybox not found");
    return;
  }
  try {
    mkdirSync(leaseDir, { recursive: true });
    writeFileSync(scriptPath, udhcpcScript(busybox));
    chmodSync(scriptPath, 0o755);
  } catch (e) {
    log.error("writing the udhcpc script", e);
    health.fail("network-dhcp", e);
    return;
  }
  const watch = () => {
    for (const nic of physicalNics()) {
      const name = `dhcp-${nic}`;
      if (sup.has(name)) continue;
      log.info(`starting DHCP on ${nic}`);
      // up here, in-process, so udhcpc's deconfig hook has no `ip link set up` to exec
      try {
        linkUp(nic);
      } catch (e) {
        log.warn(`bringing ${nic} up (the DHCP hook will try again)`, (e as Error).message);
      }
      // -f foreground (supervised), -t/-T/-A: 3 discovers 3 s apart, then wait 5 s and retry forever
      sup.monitor(serviceSpecFrom(name, {
        exec: `${busybox} udhcpc -f -i ${nic} -s ${scriptPath} -x hostname:${readHostname()} -t 3 -T 3 -A 5 -O ntpsrv`,
        log: "ring", shutdown_timeout: 2,
      }, `<builtin ${name}>`));
    }
    health.ok("network-dhcp", `${physicalNics().length} NIC(s)`);
  };
  watch();
  // NIC drivers bind asynchronously after module loading; keep looking for new ones
  setInterval(() => {
    try {
      watch();
    } catch (e) {
      log.error("NIC watch", e);
    }
  }, 2000);
}

function readHostname(): string {
  try {
    return readFileSync("/proc/sys/kernel/hostname", "utf8").trim();
  } catch {
    return "zos";
  }
}
