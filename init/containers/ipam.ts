// IPv4 addresses for containers on the bridge subnet: the gateway takes the first host address,
// containers get the lowest free one after it.
import { ContainerError } from "./errors.ts";

export function ipToInt(ip: string): number {
  return ip.split(".").reduce((n, o) => n * 256 + Number(o), 0);
}

export function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

export class Ipam {
  readonly network: number;
  readonly prefix: number;
  readonly gateway: string;
  private used = new Set<number>();

  constructor(readonly subnet = "10.88.0.0/16") {
    const [addr, len] = subnet.split("/");
    this.prefix = Number(len);
    this.network = ipToInt(addr) & (this.prefix === 0 ? 0 : (~0 << (32 - this.prefix)) >>> 0);
    this.gateway = intToIp(this.network + 1);
  }

  private get broadcast(): number {
    return this.network + 2 ** (32 - this.prefix) - 1;
  }

  /** Marks an address taken (a container restored from the state dir keeps its address). */
  claim(ip: string): void {
    const n = ipToInt(ip);
    if (n <= this.network + 1 || n >= this.broadcast) throw new ContainerError("bad-params", `${ip} is not a container address in ${this.subnet}`);
    if (this.used.has(n)) throw new ContainerError("conflict", `${ip} is already in use`);
    this.used.add(n);
  }

  allocate(): string {
    for (let n = this.network + 2; n < this.broadcast; n++) {
      if (!this.used.has(n)) {
        this.used.add(n);
        return intToIp(n);
      }
    }
    throw new ContainerError("conflict", `no free address left in ${this.subnet}`);
  }

  release(ip: string): void {
    this.used.delete(ipToInt(ip));
  }
}
