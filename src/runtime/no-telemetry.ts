// Imported before onnxruntime-node. ONNX Runtime 1.30's Linux and macOS builds start Microsoft's 1DS telemetry
// client when a process creates its first session: it leaves an empty mat-debug-<pid>.log and a .ses file in the
// temporary folder, keeps a device id and a queue of events in the user's cache folder, and uploads the events.
// A library that runs models should leave no such traces behind. ORT_DISABLE_TELEMETRY=1, read when the runtime
// starts, keeps the client from starting at all; onnxruntime-node has no API for it. A value the user set, 0
// included, is theirs to keep. The check for `process` is for the browser build, which bundles this module too.
if (typeof process !== 'undefined') process.env.ORT_DISABLE_TELEMETRY ??= '1';
