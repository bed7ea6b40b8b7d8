// cbor-x loads the native cbor-extract addon when it can, which costs PID 1 about 6 MiB of resident
// memory for a decode speed-up our small RPC frames do not need. It reads this variable on import.
process.env.CBOR_NATIVE_ACCELERATION_DISABLED = "true";
