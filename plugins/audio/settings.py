"""The audio task's settings: the data: section."""
from __future__ import annotations

import dataclasses
from typing import Optional

import suite


@dataclasses.dataclass
class AudioData(suite.DataSettings):
    """data: the clips, their log-mel spectrograms and the patches cut from them"""

    dataset: str = "chords"
    """chords (synthesised chord qualities) | folder (WAV/FLAC files in class subfolders) | speechcommands | spoken-digits (espeak-ng) | hf:NAME_OR_PATH (a Hugging Face data set)"""
    root: Optional[str] = None
    """data directory for folder and speechcommands"""
    download: bool = False
    """fetch speechcommands into root (needs network)"""
    split: Optional[str] = None
    """hf: only: the one split to use, split three ways (null: the data set's train/validation/test)"""
    audio_column: str = "audio"
    """hf: only: the column of clips (Audio feature or file paths)"""
    label_column: str = "label"
    """hf: only: the column of labels (ClassLabel, strings or integers)"""
    sample_rate: int = 16000
    """files at other rates are resampled to this"""
    clip_seconds: Optional[float] = None
    """null: 0.5 for chords, 1.0 otherwise; longer clips are centre-cropped, shorter zero-padded"""
    n_fft: int = 2048
    """FFT size: 2048 is 128 ms windows, 7.8 Hz bins, a semitone apart from C3 up"""
    hop_length: int = 256
    """samples between spectrogram frames"""
    n_mels: int = 128
    """mel bins"""
    f_min: float = 40.0
    """lowest mel frequency (Hz)"""
    f_max: Optional[float] = 4000.0
    """highest mel frequency (Hz); null: sample_rate / 2"""
    patch_freq: int = 8
    """mel bins per patch"""
    patch_time: int = 16
    """frames per patch"""
    train_size: int = 8000
    """chords only: training clips"""
    val_size: int = 1000
    """chords only: validation clips"""
    test_size: int = 2000
    """chords only: test clips"""
    val_fraction: float = 0.1
    """folder and hf: of the training files (of all files without train/ and test/ subfolders or test split)"""
    test_fraction: float = 0.2
    """folder without train/ and test/ subfolders, an hf: set of one split"""
    clips_per_voice: int = 3
    """spoken-digits only: renditions of each word by each voice (20 voices, 10 words)"""
    spec_augment: Optional[bool] = None
    """SpecAugment masks on training spectrograms only (torchaudio FrequencyMasking, TimeMasking); null: on for all but chords"""
    masks: int = 2
    """SpecAugment: frequency masks, and as many time masks, on each training clip"""
    freq_mask: int = 8
    """SpecAugment: the widest frequency mask, in mel bins (each is 0..freq_mask wide)"""
    time_mask: int = 10
    """SpecAugment: the widest time mask, in spectrogram frames"""
    batch_size: int = 64
    """training samples per optimiser step (per device)"""
