"""dirfind from Python: load a generator, find SeFa directions, render a traversal.

Run: python examples/quickstart.py   (writes quickstart_d0.png and quickstart.npz here)
"""

from dirfind import DirectionBank, load_generator
from dirfind.methods import sefa
from dirfind.render import traverse

gen = load_generator("dcgan-digiface", device="auto")  # fetched once into the cache, verified by sha256
print(gen.describe())

bank = sefa(gen, k=10)  # closed form: eigenvectors of the first layer's weight, sorted by eigenvalue
bank.save("quickstart.npz", force=True)
print("top SeFa scores:", bank.scores[:5])

bank = DirectionBank.load("quickstart.npz")  # validated; plain numpy arrays + JSON metadata
result = traverse(gen, bank, dirs=[0], seeds=range(4), steps=9, out="quickstart_d0.png", force=True)
print("images:", result["images"].shape, "->", result["files"])
