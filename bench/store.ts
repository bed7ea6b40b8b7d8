// `make bench-store`: the zdb server against redis-server, then the erasure-coded store over six
// local zdb backends; one results file and one table for both.
import { report } from "./lib/report.ts";
import { benchZdb } from "./store/zdb.ts";
import { benchErasure } from "./store/erasure.ts";

report("store", [...(await benchZdb()), ...(await benchErasure())]);
