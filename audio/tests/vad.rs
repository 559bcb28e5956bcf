//! Silero VAD on the real weights of the silero-vad 6.2.3 wheel (`silero_vad_16k.safetensors`,
//! `scripts/speech-weights.sh`) against the forward of the wheel's own `tinygrad_model.py` for
//! that file, in float64 (`tests/fixtures/speech/make_vad_fixtures.py`), and the turn detector
//! on speech, silence, noise, music-like tones and clipped speech.

use std::collections::HashMap;
use std::path::PathBuf;

use qwglm_audio::vad::{speech_segments, SileroVad, TurnConfig, VoiceActivity, VoiceEvent, FRAME};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn vad() -> SileroVad {
    let path = root().join("target/speech-weights/silero-vad/silero_vad_16k.safetensors");
    let bytes = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/speech-weights.sh first)", path.display()));
    SileroVad::from_safetensors(&bytes).unwrap()
}

fn clip(name: &str) -> Vec<f32> {
    let f = std::fs::File::open(root().join("tests/fixtures/speech/clips").join(name)).unwrap();
    let pcm = qwglm_audio::read_wav(std::io::BufReader::new(f)).unwrap();
    assert_eq!(pcm.sample_rate_hz, 16_000, "{name}");
    pcm.samples
}

#[test]
fn probabilities_match_the_reference() {
    let text = std::fs::read_to_string(root().join("tests/fixtures/speech/clips/vad_reference.json")).unwrap();
    let reference: HashMap<String, Vec<f32>> = serde_json::from_str(&text).unwrap();
    let mut worst = 0.0f32;
    for (name, want) in &reference {
        let samples = clip(name);
        let mut v = vad();
        let got: Vec<f32> = samples.chunks_exact(FRAME).map(|f| v.frame(f)).collect();
        assert_eq!(got.len(), want.len(), "{name}: frames");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            worst = worst.max((g - w).abs());
            assert!((g - w).abs() < 1e-4, "{name}: frame {i}: got {g}, want {w}");
        }
    }
    eprintln!("largest difference from the reference: {worst:.2e}");
}

#[test]
fn turns_are_found_in_speech_and_nowhere_else() {
    for name in ["fox_175.wav", "weather_130.wav", "clipped_16k.wav"] {
        let samples = clip(name);
        let segs = speech_segments(vad(), TurnConfig::default(), &samples);
        assert_eq!(segs.len(), 1, "{name}: one turn, got {segs:?}");
        let (s, e) = segs[0];
        // espeak-ng's clips start within a few frames and end at the clip's end.
        assert!(
            s < 16_000 / 2 && e > samples.len() * 3 / 4 && e <= samples.len(),
            "{name}: {segs:?} of {}",
            samples.len()
        );
    }
    for name in ["silence.wav", "noise_16k.wav", "tones_16k.wav"] {
        assert_eq!(speech_segments(vad(), TurnConfig::default(), &clip(name)), vec![], "{name}: no speech");
    }
}

#[test]
fn a_pause_shorter_than_the_hangover_keeps_the_turn() {
    let fox = clip("fox_175.wav");
    let mut two = fox.clone();
    two.extend(std::iter::repeat_n(0.0, 16_000 * 3 / 10)); // 300 ms
    two.extend(&fox);
    assert_eq!(speech_segments(vad(), TurnConfig::default(), &two).len(), 1);
    let mut apart = fox.clone();
    apart.extend(std::iter::repeat_n(0.0, 16_000 * 15 / 10)); // 1.5 s
    apart.extend(&fox);
    assert_eq!(speech_segments(vad(), TurnConfig::default(), &apart).len(), 2);
}

#[test]
fn chunked_input_gives_the_same_events() {
    let mut samples = vec![0.0; 8000];
    samples.extend(clip("weather_130.wav"));
    samples.extend(vec![0.0; 16_000]);
    let whole = VoiceActivity::new(vad(), TurnConfig::default()).push(&samples);
    assert!(matches!(whole[..], [VoiceEvent::Start { .. }, VoiceEvent::End { .. }]), "{whole:?}");
    let mut va = VoiceActivity::new(vad(), TurnConfig::default());
    let mut events = Vec::new();
    let mut at = 0;
    for (i, n) in [1usize, 127, 480, 4410, 3].iter().cycle().enumerate() {
        if at >= samples.len() {
            break;
        }
        let end = (at + n + i % 5).min(samples.len());
        events.extend(va.push(&samples[at..end]));
        at = end;
    }
    assert_eq!(events, whole);
    assert!(!va.speaking());
}

#[test]
fn bad_weights_are_a_clear_error() {
    for (bytes, needle) in [
        (&b"garbage"[..], "not a safetensors file"),
        (&[2, 0, 0, 0, 0, 0, 0, 0, b'{', b'}'][..], "no stft_conv.weight"),
    ] {
        let e = SileroVad::from_safetensors(bytes).err().expect("an error").to_string();
        assert!(e.contains(needle), "{e}");
    }
}
