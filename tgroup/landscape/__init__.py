"""Training-free task grouping from the sample-wise optimisation landscape (DESIGN §2).

Thakur et al. 2024: a task dissimilarity matrix becomes a weighted task graph
(:mod:`tgroup.landscape.graph`), a graph attention network learns task
embeddings from it (:mod:`tgroup.landscape.gat`), and a Gaussian mixture over
the embeddings gives the groups (:mod:`tgroup.landscape.cluster`).
"""
