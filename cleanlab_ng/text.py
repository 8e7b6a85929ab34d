"""Text features: TF-IDF reduced to a dense embedding by truncated SVD (latent semantic analysis).

No model download and no extra dependency: every run embeds the same texts the same way on
any machine. Dense and low-dimensional, the result suits the proxy heads the way an image
embedding does.
"""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

N_COMPONENTS = 256
# our choice: a vocabulary this size keeps the SVD fast and holds every word that appears in
# at least two documents of a corpus of a few tens of thousands
MAX_VOCABULARY = 100_000


def embed_texts(texts: list[str], *, n_components: int = N_COMPONENTS,
                seed: int = 0) -> tuple[np.ndarray, str]:
    """Embed texts as L2-normalised LSA vectors.

    Parameters
    ----------
    texts : list of str
    n_components : int, default=256
        Width of the embedding; capped below the vocabulary size and the number of texts.
    seed : int, default=0
        Seeds the randomised SVD.

    Returns
    -------
    Z : ndarray of float32, shape (n_samples, n_components)
    reason : str
        What was computed, for the log and the summary.
    """
    vectorizer = TfidfVectorizer(sublinear_tf=True, min_df=2, max_df=0.5,
                                 max_features=MAX_VOCABULARY, strip_accents="unicode",
                                 dtype=np.float32)
    try:
        tfidf = vectorizer.fit_transform(texts)
    except ValueError:  # every word is in one text only, or in more than half of them
        vectorizer.set_params(min_df=1, max_df=1.0)
        tfidf = vectorizer.fit_transform(texts)
    width = max(1, min(n_components, tfidf.shape[1] - 1, len(texts) - 1))
    Z = TruncatedSVD(width, algorithm="randomized", random_state=seed).fit_transform(tfidf)
    reason = (f"text: TF-IDF over {tfidf.shape[1]} words, truncated SVD to {width} "
              "dimensions")
    return normalize(Z).astype(np.float32), reason
