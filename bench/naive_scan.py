"""The naive scanner bench_scan.py compares against: what a first attempt looks like.

OpenCV decodes every frame; one frame per second is hashed with imagehash's
pHash and compared with every entry of a bare pHash list, one by one.
"""

import sys

import cv2
import imagehash
from PIL import Image


def main(phash_list: str, clip: str) -> int:
    with open(phash_list) as lines:
        entries = [int(line, 16) for line in lines if line.strip()]
    capture = cv2.VideoCapture(clip)
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    matches = index = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        if index % round(fps) == 0:
            image = Image.fromarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            value = int(str(imagehash.phash(image)), 16)
            matches += sum((value ^ entry).bit_count() <= 10 for entry in entries)
        index += 1
    print(f"{index} frames, {matches} matches")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
