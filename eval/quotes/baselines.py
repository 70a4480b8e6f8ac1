"""scikit-learn baselines for `dealdesk eval quotes`, under the same protocol and columns.

Usage: python baselines.py --csv FILE --target COL --positive VALUE [--sep C]
                           [--time-col COL] [--drop COL ...]

Protocol (as the Rust command): rows with an empty target are left out; the target, the time
column and --drop columns are not features; ISO-date columns become day numbers, other
numeric columns are standardized (median-imputed), text columns are one-hot encoded.
5-fold stratified CV (shuffled, seed 42) without a time column, else a time-ordered 80/20
split. Models: logistic regression with C chosen by inner 5-fold CV on log-loss over
10^-3..10^2 (L2), and HistGradientBoostingClassifier with default settings.
Prints one JSON object: {model: {auc, logloss, brier, ece, ...}}.
"""

import argparse
import json
import warnings

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegressionCV
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler


def ece(p, y, bins=10):
    idx = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            total += abs(p[m].sum() - y[m].sum())
    return total / len(p)


def scores(p, y):
    return {
        "auc": roc_auc_score(y, p),
        "logloss": log_loss(y, np.clip(p, 1e-15, 1 - 1e-15), labels=[0, 1]),
        "brier": brier_score_loss(y, p),
        "ece": ece(p, y),
    }


def load(args):
    df = pd.read_csv(args.csv, sep=args.sep, dtype=str, keep_default_na=False)
    df = df[df[args.target].str.strip() != ""].reset_index(drop=True)
    y = (df[args.target] == args.positive).astype(int).to_numpy()
    times = df[args.time_col] if args.time_col else None
    X = df.drop(columns=[args.target] + args.drop + ([args.time_col] if args.time_col else []))
    numeric, categorical = [], []
    for c in X.columns:
        col = X[c].replace("", np.nan)
        num = pd.to_numeric(col, errors="coerce")
        if num.notna().sum() == col.notna().sum():
            X[c] = num
            numeric.append(c)
            continue
        date = pd.to_datetime(col, format="%Y-%m-%d", errors="coerce")
        if date.notna().sum() == col.notna().sum():
            X[c] = (date - pd.Timestamp("1970-01-01")).dt.days.astype(float)
            numeric.append(c)
        else:
            X[c] = col.fillna("(missing)")
            categorical.append(c)
    return X, y, times, numeric, categorical


def models(numeric, categorical):
    linear = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
        ("cat", OneHotEncoder(handle_unknown="ignore"), categorical),
    ])
    trees = ColumnTransformer([
        ("num", "passthrough", numeric),
        ("cat", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1), categorical),
    ])
    cat_mask = [False] * len(numeric) + [True] * len(categorical)
    return {
        "logreg": make_pipeline(linear, LogisticRegressionCV(
            Cs=np.logspace(-3, 2, 11), cv=StratifiedKFold(5, shuffle=True, random_state=42),
            scoring="neg_log_loss", max_iter=5000)),
        "hgb": make_pipeline(trees, HistGradientBoostingClassifier(
            random_state=42, categorical_features=cat_mask)),
    }


def main():
    warnings.filterwarnings("ignore", category=FutureWarning)
    ap = argparse.ArgumentParser()
    ap.add_argument("--csv", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--positive", required=True)
    ap.add_argument("--sep", default=",")
    ap.add_argument("--time-col")
    ap.add_argument("--drop", nargs="*", default=[])
    args = ap.parse_args()
    X, y, times, numeric, categorical = load(args)
    if times is not None:
        order = np.argsort(pd.to_datetime(times).to_numpy(), kind="stable")
        cut = len(order) * 4 // 5
        splits = [(order[:cut], order[cut:])]
    else:
        splits = list(StratifiedKFold(5, shuffle=True, random_state=42).split(X, y))
    out = {}
    for name in ["logreg", "hgb"]:
        per = []
        for train, test in splits:
            model = models(numeric, categorical)[name]
            model.fit(X.iloc[train], y[train])
            per.append(scores(model.predict_proba(X.iloc[test])[:, 1], y[test]))
        out[name] = {k: float(np.mean([s[k] for s in per])) for k in per[0]}
        if len(per) > 1:
            out[name]["sd"] = {k: float(np.std([s[k] for s in per], ddof=1)) for k in per[0]}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
