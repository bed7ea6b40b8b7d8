// The npm `redis` client (node-redis, written for Redis, not for 0-db) against the zdb server
// process: its own GET/SET/EXISTS/DEL/PING/DBSIZE helpers, 0-db commands through sendCommand,
// pipelined bursts, binary values, and error replies as ErrorReply.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { createClient, RESP_TYPES } from "redis";
import { removeDir, startZdb, tempDir, type ZdbProcess } from "./zdb-process.ts";

let dir: string;
let z: ZdbProcess;

beforeAll(async () => {
  dir = tempDir("zdb-node-redis");
  z = await startZdb(join(dir, "data"));
});

afterAll(async () => {
  await z.stop();
  removeDir(dir);
});

describe("zdb server with the npm redis client", () => {
  test("redis helpers and sendCommand", async () => {
    const client = createClient({ url: `redis://127.0.0.1:${z.port}`, RESP: 2 });
    client.on("error", () => {});
    await client.connect();
    const send = (args: (string | Buffer)[]): Promise<unknown> => client.sendCommand(args) as Promise<unknown>;
    try {
      expect(await client.ping()).toBe("PONG");
      expect(await client.set("greeting", "hello")).toBe("greeting"); // 0-db answers the key
      expect(await client.get("greeting")).toBe("hello");
      expect(await client.exists("greeting")).toBe(1);
      expect(await client.dbSize()).toBe(1);
      expect(await send(["NSNEW", "node"])).toBe("OK");
      expect(await send(["NSLIST"])).toEqual(["default", "node"]);
      expect(await send(["DEL", "greeting"])).toBe("OK");
      await expect(send(["DEL", "greeting"])).rejects.toThrow("Key not found");

      // A burst of pipelined binary SETs and GETs on a namespace (SELECT applies to the connection).
      const binary = client.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer });
      const sendBinary = (args: (string | Buffer)[]): Promise<unknown> => binary.sendCommand(args) as Promise<unknown>;
      await sendBinary(["SELECT", "node"]);
      const values = Array.from({ length: 300 }, (_, i) => randomBytes(1 + ((i * 7919) % 70_000)));
      const sets = await Promise.all(values.map((v, i) => sendBinary([Buffer.from(`SET`), Buffer.from(`b${i}`), v])));
      expect(sets.every((k, i) => Buffer.isBuffer(k) && k.toString() === `b${i}`)).toBe(true);
      const gets = (await Promise.all(values.map((_, i) => sendBinary(["GET", `b${i}`])))) as Buffer[];
      expect(gets.every((g, i) => g.equals(values[i]))).toBe(true);
      expect(await sendBinary(["DBSIZE"])).toBe(300);
      expect(await sendBinary(["CHECK", "b5"])).toBe(1);

      const mget = (await sendBinary(["MGET", "b1", "nope", "b2"])) as (Buffer | null)[];
      expect(mget[0]!.equals(values[1])).toBe(true);
      expect(mget[1]).toBeNull();
      expect(mget[2]!.equals(values[2])).toBe(true);

      const [cursor, entries] = (await send(["SCAN"])) as [string, [string, number, number][]];
      expect(typeof cursor).toBe("string");
      expect(entries[0][0]).toBe("b0");
      expect(entries[0][1]).toBe(values[0].length);
      await expect(send(["NOPE"])).rejects.toThrow("Command not supported: NOPE");
      // The connection survives errors.
      expect(await client.ping()).toBe("PONG");
    } finally {
      client.destroy();
    }
  });

  test("without an admin password everyone is admin, yet namespace passwords still hold", async () => {
    const open = async () => {
      const c = createClient({ url: `redis://127.0.0.1:${z.port}`, RESP: 2 });
      c.on("error", () => {});
      await c.connect();
      return { send: (args: string[]) => c.sendCommand(args) as Promise<unknown>, destroy: () => c.destroy() };
    };
    const owner = await open();
    const other = await open();
    try {
      expect(await owner.send(["NSNEW", "private"])).toBe("OK");
      expect(await owner.send(["NSSET", "private", "password", "pw"])).toBe("OK");
      expect(await owner.send(["NSSET", "private", "public", "0"])).toBe("OK");
      await expect(other.send(["SELECT", "private"])).rejects.toThrow("Namespace protected: password required");
      expect(await other.send(["SELECT", "private", "pw"])).toBe("OK");
      expect(await other.send(["SET", "x", "y"])).toBe("x");
    } finally {
      owner.destroy();
      other.destroy();
    }
  });
});
