// Wall-clock time at boot: the kernel starts from the RTC (when it has one); once a DHCP lease is up
// we ask NTP servers (SNTP, RFC 4330: one 48-byte request, read the transmit timestamp) and set the
// clock, then again every hour. With no network at all, the RTC value stands.
import { readFileSync } from "node:fs";
import { setRealtimeClock } from "../libc.ts";
import { logger } from "../log.ts";
import type { Health } from "../health.ts";
import { currentLeases } from "./network.ts";

const log = logger("time");
const ntpEpochOffset = 2_208_988_800; // seconds from 1900-01-01 to 1970-01-01

/** One SNTP query; resolves to the server's time in unix ms, corrected by half the round trip.
 * Uses Bun.udpSocket, Bun's native UDP API, rather than the node:dgram compatibility layer. */
export async function sntpQuery(host: string, port = 123, timeoutMs = 3000): Promise<number> {
  const address = /^\d+\.\d+\.\d+\.\d+$/.test(host) ? host : (await Bun.dns.lookup(host, { family: 4 }))[0]?.address;
  if (!address) throw new Error(`cannot resolve NTP server ${host}`);
  let settle!: { resolve(t: number): void; reject(e: Error): void };
  const answer = new Promise<number>((resolve, reject) => (settle = { resolve, reject }));
  const req = Buffer.alloc(48);
  req[0] = (0 << 6) | (4 << 3) | 3; // LI 0, version 4, mode 3 (client)
  let sent = 0;
  const sock = await Bun.udpSocket({
    socket: {
      data(_s, msg) {
        if (msg.length < 48 || (msg[0] & 7) !== 4) return; // not a server reply
        const secs = msg.readUInt32BE(40), frac = msg.readUInt32BE(44);
        if (secs === 0) return settle.reject(new Error(`${host} sent a zero timestamp (kiss-o'-death?)`));
        settle.resolve((secs - ntpEpochOffset) * 1000 + (frac / 2 ** 32) * 1000 + (Date.now() - sent) / 2);
      },
      error(_s, e) {
        settle.reject(e);
      },
    },
  });
  const timer = setTimeout(() => settle.reject(new Error(`no NTP answer from ${host} in ${timeoutMs} ms`)), timeoutMs);
  try {
    sent = Date.now();
    sock.send(req, port, address);
    return await answer;
  } finally {
    clearTimeout(timer);
    sock.close();
  }
}

export function rtcTime(): number | null {
  try {
    return Number(readFileSync("/sys/class/rtc/rtc0/since_epoch", "utf8")) * 1000;
  } catch {
    return null;
  }
}

export function startTimeSync(configured: string[], health: Health): void {
  const rtc = rtcTime();
  // the kernel normally copied the RTC already; a clock before 2024 means it did not
  if (rtc && Date.now() < Date.UTC(2024, 0, 1) && rtc > Date.now()) {
    try {
      setRealtimeClock(rtc);
      log.info(`clock set from RTC: ${new Date(rtc).toISOString()}`);
    } catch (e) {
      log.warn("setting clock from RTC", e);
    }
  }
  health.ok("time", rtc ? "RTC" : "no RTC");
  const servers = () => [...configured, ...currentLeases().flatMap((l) => (l.ntp ? l.ntp.split(/\s+/) : [])), "pool.ntp.org"].filter(Boolean);
  const attempt = async (): Promise<boolean> => {
    if (currentLeases().length === 0 && configured.length === 0) return false;
    for (const server of servers()) {
      try {
        const t = await sntpQuery(server);
        const skew = t - Date.now();
        setRealtimeClock(t);
        log.info(`clock set from NTP ${server} (was ${Math.round(skew)} ms off)`);
        health.ok("time", `NTP ${server}`);
        return true;
      } catch (e) {
        log.debug(`NTP ${server}`, (e as Error).message);
      }
    }
    return false;
  };
  const loop = async () => {
    const ok = await attempt().catch(() => false);
    setTimeout(loop, ok ? 3600_000 : 10_000);
  };
  setTimeout(loop, 1000);
}
