// The engine worker: loads the engine's wasm, whose main() installs the message handler.
import init from './pkg/qwglm-worker.js';
init();
