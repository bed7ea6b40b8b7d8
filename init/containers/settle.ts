/**
 * Waits for every one of `pending` to settle, then throws the first failure or returns every value.
 * Unlike Promise.all, a failure does not return while the others still run: the teardown that
 * follows a failed step must not race work still going on (files being written into the bundle).
 */
export async function settleAll<T extends unknown[]>(pending: [...{ [K in keyof T]: Promise<T[K]> }]): Promise<T> {
  const settled = await Promise.allSettled(pending);
  const failed = settled.find((r) => r.status === "rejected");
  if (failed) throw (failed as PromiseRejectedResult).reason;
  return settled.map((r) => (r as PromiseFulfilledResult<unknown>).value) as T;
}
