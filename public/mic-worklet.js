// Microphone capture for qwglm: the mean of the input's channels, posted to the page in
// chunks of about 100 ms as transferable Float32Arrays at the context's rate. The page posts
// "flush" at the end of a turn: the partial chunk goes out, then "flushed".
class QwglmMic extends AudioWorkletProcessor {
  constructor() {
    super();
    this.size = Math.max(128, Math.round(sampleRate / 10));
    this.chunk = new Float32Array(this.size);
    this.fill = 0;
    this.port.onmessage = (e) => {
      if (e.data === 'flush') {
        if (this.fill > 0) this.send(this.chunk.slice(0, this.fill));
        this.fill = 0;
        this.port.postMessage('flushed');
      }
    };
  }

  send(samples) {
    this.port.postMessage(samples, [samples.buffer]);
  }

  process(inputs) {
    const input = inputs[0];
    if (input && input.length > 0) {
      const channels = input.length;
      const n = input[0].length;
      for (let i = 0; i < n; i++) {
        let s = 0;
        for (let c = 0; c < channels; c++) s += input[c][i];
        this.chunk[this.fill++] = s / channels;
        if (this.fill === this.size) {
          this.send(this.chunk);
          this.chunk = new Float32Array(this.size);
          this.fill = 0;
        }
      }
    }
    return true;
  }
}

registerProcessor('qwglm-mic', QwglmMic);
