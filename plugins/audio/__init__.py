"""Audio: clip classification with AST-style spectrogram patches on the shared backbone.

A mono waveform at ``sample_rate`` is cut or padded to ``clip_seconds``, turned into a log-mel
spectrogram with torchaudio (``n_mels`` bins, ``hop_length``), normalised with the training
set's mean and std (one scalar each, as in the Audio Spectrogram Transformer) and cut into
non-overlapping ``patch_freq`` x ``patch_time`` patches; the adapter projects them to ``d_model``
with a [CLS] vector and factorised frequency-row + time-column positions.

Data (``--data.dataset``): ``chords`` (chord qualities synthesised with torch, the default),
``spoken-digits`` (spoken by espeak-ng voices, test voices held out), ``folder`` (WAV/FLAC files in
class subfolders) and ``speechcommands`` (torchaudio). Training spectrograms of every set but the
chords get SpecAugment masks.

Reads top to bottom, a file an idea:

  tokenizer.py  waveforms to normalised log-mel patches, and the normalisation statistics
  data.py       the data sets as waveforms (synth.py synthesises the chords, speech.py the spoken digits)
  features.py   a data set's log-mel features, computed once and cached (on disk, in memory)
  augment.py    SpecAugment and the training stream that masks and cuts a batch at a time
  settings.py   the data: settings
  task.py       the task ``audio`` (the adapter and head are suite's patch adapter and classifier)
  stt_data.py   speech-to-text data: numbers spoken by espeak-ng, recordings in a pairs file, augmentation
  speech_to_text.py  the task ``speech-to-text`` (Whisper's shape: log-mel patches in, characters out)

This file registers the tasks (the modules, which need torch, are imported when the hook or a name
asks for them).
"""
from __future__ import annotations

import suite
from suite.lazy import lazy_getattr

# Where each name this module had before it was split lives; imported on first use (PEP 562).
_EXPORTS = {
    **dict.fromkeys(["AudioTokenizer", "tokenizer_from_config", "log_mel_stats"], ".tokenizer"),
    **dict.fromkeys(["AudioSplits", "feature_cache_ok", "fit_length", "load_audio", "read_audio"], ".data"),
    **dict.fromkeys(["_CACHE", "CACHED_DATASETS", "feature_settings", "feature_cache", "compute_features", "write_features",
                     "read_features", "features_for"], ".features"),
    **dict.fromkeys(["AudioData"], ".settings"),
    **dict.fromkeys(["AudioTask"], ".task"),
}


@suite.hookimpl
def suite_register_tasks(register):
    from .speech_to_text import SpeechToTextTask
    from .task import AudioTask

    register(AudioTask())
    register(SpeechToTextTask())


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())  # the names this module had, from the files that hold them
