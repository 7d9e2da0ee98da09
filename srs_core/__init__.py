"""srs_core: session-based recommenders trained with scalable losses.

A small library behind the book that reproduces *Scalable Losses in
Session-based Recommendation Systems with Deep Learning Architectures*
(da Veiga, ICMC-USP, 2023).
"""

__version__ = "0.1.0"
