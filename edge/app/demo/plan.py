"""How big the demo is: frames, input sizes, epochs and loop length, as one frozen record.

`FULL` is sized for about ten minutes on two CPU cores (measured with other work on them); `QUICK`
checks the plumbing in about a minute (the CI test), and its figures mean nothing.
"""
from __future__ import annotations

from dataclasses import dataclass

# Faster R-CNN sized for a CPU and the phantom (at most four boxes per frame): fewer RPN proposals and
# sampled ROIs than torchvision's 2000/1000/512 (benchmarks/bench_train.py); create_model records
# them in the checkpoint, so the exported detector keeps them.
DETECTOR_KWARGS = {"rpn_pre_nms_top_n_train": 600, "rpn_pre_nms_top_n_test": 600,
                   "rpn_post_nms_top_n_train": 300, "rpn_post_nms_top_n_test": 100,
                   "box_batch_size_per_image": 32}


@dataclass(frozen=True)
class DemoPlan:
    """Sizes of every stage. Frames are rendered at `frame` (height, width) for training, testing and
    the runtime's probe sweep alike, so the loop sees what the models were trained on."""

    frame: tuple[int, int] = (130, 224)          # the scanner's 389x672 aspect, a third of its size
    train_frames: int = 800                      # i.i.d. phantom frames, seed S (all four tasks share them)
    # ... and probe sweeps of other fetuses (seeds S+100..), so the models learn what a sweep looks like
    # between planes; the loop's own sweep (seed S+2) is never among them.
    train_sweeps: int = 16
    sweep_frames: int = 50                       # frames per training sweep
    test_frames: int = 300                       # seed S+1: held out for every score in the demo
    classifier: str = "resnet8"
    classifier_input: int = 64
    epochs: int = 4
    batch_size: int = 32
    detector: str = "fasterrcnn_resnet10"
    detector_input: int = 128
    detector_fpn: int = 64
    detector_frames: int = 240                   # the first N training frames
    detector_test: int = 100                     # the first N test frames
    detector_epochs: int = 3
    detector_batch: int = 8
    # The detector's INT8 is calibration only (post-training quantisation): its QAT took four of the
    # demo's ten minutes. Export gates it on box mAP against the phantom's true boxes.
    detector_int8: bool = True
    detector_qat_epochs: int = 0
    ratio: float = 0.5                           # structured pruning: fraction of prunable weights removed
    # training frames for fine-tuning, calibration and QAT: all of them (i.i.d. and sweeps). On the first
    # 500 for 2 epochs the pruned plane model called the loop's sweep right on 0.77 of frames (state 0.79,
    # retrieval precision 0.70); on all 1600 for 3 epochs 0.92 (state 0.96, precision 0.93).
    compress_frames: int = 1600
    finetune_epochs: int = 3                     # the last at lr/10, so BatchNorm statistics settle
    unpruned_int8: bool = False                  # the sweep's extra INT8 of the unpruned model: not bundled
    latency_rounds: int = 10
    parity_frames: int | None = None             # None: export's defaults (100 per classifier, 16 boxes)
    run_frames: int = 300
    realtime: bool = True                        # the sweep plays at 23 Hz, as a probe would


FULL = DemoPlan()
QUICK = DemoPlan(frame=(48, 80), train_frames=48, train_sweeps=4, sweep_frames=6, test_frames=16, classifier_input=32, epochs=1,
                 batch_size=16, detector_input=64, detector_fpn=32, detector_frames=8, detector_test=4,
                 detector_epochs=1, detector_batch=4, compress_frames=16, latency_rounds=2,
                 parity_frames=4, run_frames=12)
