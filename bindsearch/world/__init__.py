"""BindWorld: deterministic synthetic scenes whose attributes are split across senses like real sensors'.

Each scene is one object with eight discrete attributes:

    shape        circle square triangle diamond star cross          (6)
    size         small medium large                                  (3)
    position     3x3 grid: top-left top top-right left centre right
                 bottom-left bottom bottom-right                       (9)
    colour       red orange yellow green blue purple pink            (7)
    temperature  cold warm hot                                       (3)
    material     wood metal glass rubber                             (4)
    direction    left right up down                                  (4)
    speed        slow medium fast                                    (3)

and is written as five files (`DIR/<modality>/<id>.<ext>`), each sensing part of it (`SENSES`):

    image     png 64x64 RGB         shape size position colour
    depth     png 16-bit, mm        shape size position
    infrared  png 8-bit             shape size position temperature
    video     mp4 8 frames, 4 fps   shape size position colour direction speed
    audio     wav 16 kHz mono 2 s   size (pitch) material (timbre) speed (impact rate)
    text      captions              everything

Pairs of modalities are compared on `shared_attributes(a, b)`; with uniform values the chance that a
random candidate matches is `chance(a, b)`: depth/infrared, image/depth, image/infrared, video/depth
and video/infrared share shape, size and position (1/162 = 0.62%); image/video also share colour
(1/1134); audio/video share size and speed (1/9 = 11.1%).

Rendering: the object's pixel geometry (jittered +-3% of the frame around its grid cell, +-7% in
radius, rotated up to 10 degrees) is shared by image, depth, infrared and video; each view has its own
background (textured, unevenly lit grey; a tilted wall at 2.5-4 m behind an object at 1-2 m; a 70-110
ambient with cold objects darker, warm and hot ones brighter, hot ones glowing) and sensor noise. The
video's object crosses its cell centre mid-clip, covering 10%, 20% or 32% of the frame (slow, medium,
fast); the sound's impacts come 2, 4 or 6.5 times a second in the same ratio, pitched an octave apart
by size (880/440/220 Hz) with a timbre per material (see `sound.MATERIALS`).

Captions (`captions.py`): per scene, 4 training captions naming every attribute, 2 held-out
paraphrases from a disjoint, everyday vocabulary (other synonyms, "reddish", "leftmost", other sentence
frames; a rarer one is kept for the benchmark), and 3 captions per modality naming only what it
senses. `attribute_prompts` gives zero-shot prompts per attribute value.

Determinism: scene `i` of seed `s` has the same attributes, captions and pixels whatever `n` or the
number of workers; splits are an exact-count shuffle by seed (default 80/10/10).
"""

from bindsearch.world.attributes import ATTRIBUTES, MODALITIES, SENSES, chance, same_on, shared_attributes
from bindsearch.world.captions import (
    HELD_OUT,
    PARAPHRASE,
    RARE_PARAPHRASE,
    STOPWORDS,
    TRAIN,
    Vocabulary,
    attribute_prompts,
    describe,
)
from bindsearch.world.generate import (
    VERSION,
    WorldConfig,
    WorldInfo,
    make_world,
    read_manifest,
    render_scene,
    scene_geometry,
)
from bindsearch.world.reel import Reel, draw_scenes, make_reel
from bindsearch.world.scene import EXTENSIONS, Scene, read_scenes, sensed_paraphrase

__all__ = [
    "ATTRIBUTES",
    "EXTENSIONS",
    "Reel",
    "HELD_OUT",
    "MODALITIES",
    "PARAPHRASE",
    "RARE_PARAPHRASE",
    "SENSES",
    "STOPWORDS",
    "TRAIN",
    "VERSION",
    "Scene",
    "Vocabulary",
    "WorldConfig",
    "WorldInfo",
    "attribute_prompts",
    "chance",
    "describe",
    "draw_scenes",
    "make_reel",
    "make_world",
    "read_manifest",
    "read_scenes",
    "render_scene",
    "same_on",
    "scene_geometry",
    "sensed_paraphrase",
    "shared_attributes",
]
