// Store URLs as recorded in an flist's route table.

/** The URL without the password in its userinfo or a `password=` query setting (rfs strips these on pack). */
export function stripPassword(raw: string): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return raw.replace(/\/\/([^:/@]*):[^@/]*@/, "//$1@");
  }
  if (!u.password && !u.searchParams.has("password")) return raw;
  u.password = "";
  u.searchParams.delete("password");
  return u.toString();
}
