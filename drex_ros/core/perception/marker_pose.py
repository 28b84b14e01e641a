"""Object pose in the camera frame from its ArUco markers, refined with depth.

Steps: detect markers; for every detected marker, IPPE gives the two planar PnP
solutions of that marker, each a candidate object pose through the marker's known
face pose; the candidate that best reprojects *all* detected corners wins (this
resolves the planar flip ambiguity with the other faces). Then one Gauss-Newton fit
refines the 6-D pose against two kinds of evidence at once: corner reprojection
(pixels) and the distance of depth samples inside each marker to that marker's
plane (metres). Depth fixes the distance and the face normals, which a 40-pixel
marker alone pins down poorly; corners fix the in-plane position and rotation.

Pose convention: camera_T_object as (R, t) with p_camera = R @ p_object + t, in the
OpenCV optical frame. Perturbations are on the left: R <- exp(w) R, t <- t + dt.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from drex_ros.core.perception.image_input import Intrinsics
from drex_ros.core.robot.markers import MarkerFace

# Corners in the order OpenCV's detector returns them, in the marker's frame (x right, y up).
_UNIT_CORNERS = np.array([[-1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [1.0, -1.0, 0.0], [-1.0, -1.0, 0.0]]) / 2
# Depth samples: a grid over the marker's inner part, away from its edges.
_GRID = np.linspace(0.2, 0.8, 6)


@dataclass(frozen=True)
class MarkerSettings:
    corner_sigma_px: float = 0.5  # detector corner noise
    depth_sigma_m: float = 0.002  # depth noise of the sensor at working range
    depth_gate_m: float = 0.015  # samples further than this from the predicted plane are not the marker
    max_marker_reproj_px: float = 3.0  # a marker that fits worse than this is dropped as a misdetection
    max_rms_reproj_px: float = 2.0  # the whole fit must be at least this good to be reported
    iterations: int = 8
    use_depth: bool = True


@dataclass(frozen=True)
class MarkerPose:
    """camera_T_object with its 6x6 covariance (order: translation, rotation; camera frame)."""

    rotation: np.ndarray
    translation: np.ndarray
    covariance: np.ndarray
    marker_ids: tuple[int, ...]
    rms_reproj_px: float
    depth_points: int


def skew(v: np.ndarray) -> np.ndarray:
    return np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])


def exp_so3(w: np.ndarray) -> np.ndarray:
    return cv2.Rodrigues(np.asarray(w, dtype=float).reshape(3, 1))[0]


def make_detector(dictionary: int, subpixel: bool = True) -> cv2.aruco.ArucoDetector:
    params = cv2.aruco.DetectorParameters()
    # Small markers (30-60 px) at working range: subpixel corners matter for the pose.
    params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX if subpixel else cv2.aruco.CORNER_REFINE_NONE
    params.cornerRefinementWinSize = 3
    params.minMarkerPerimeterRate = 0.02
    return cv2.aruco.ArucoDetector(cv2.aruco.getPredefinedDictionary(dictionary), params)


def detect_markers(detector: cv2.aruco.ArucoDetector, gray: np.ndarray) -> dict[int, np.ndarray]:
    """Marker id -> 4x2 corners (pixels); an id seen twice is ambiguous and is left out."""
    corners, ids, _ = detector.detectMarkers(gray)
    if ids is None:
        return {}
    found: dict[int, np.ndarray] = {}
    seen_twice = set()
    for c, i in zip(corners, ids.ravel(), strict=True):
        i = int(i)
        if i in found:
            seen_twice.add(i)
        found[i] = c.reshape(4, 2).astype(float)
    return {i: c for i, c in found.items() if i not in seen_twice}


def _undistort(points: np.ndarray, intr: Intrinsics) -> np.ndarray:
    if not np.any(intr.dist):
        return points
    return cv2.undistortPoints(points.reshape(-1, 1, 2), intr.K, intr.dist, P=intr.K).reshape(-1, 2)


def _project(K: np.ndarray, p: np.ndarray) -> np.ndarray:
    return np.column_stack([K[0, 0] * p[:, 0] / p[:, 2] + K[0, 2], K[1, 1] * p[:, 1] / p[:, 2] + K[1, 2]])


class MarkerPoseEstimator:
    """Pose of one marker-carrying object from a colour + depth frame."""

    def __init__(self, faces: dict[int, MarkerFace], dictionary: int, settings: MarkerSettings | None = None):
        if not faces:
            raise ValueError("the object has no markers")
        self.faces = faces
        self.settings = settings or MarkerSettings()
        self.detector = make_detector(dictionary)
        # Corner coordinates and plane (normal, offset) of every marker in the object frame.
        self._corners_obj = {i: f.position + (f.rotation @ (_UNIT_CORNERS * f.side).T).T for i, f in faces.items()}

    def estimate(self, gray: np.ndarray, depth: np.ndarray | None, intr: Intrinsics,
                 detections: dict[int, np.ndarray] | None = None) -> MarkerPose | None:
        """The object's pose, or None when no known marker is seen well enough."""
        if detections is None:
            detections = detect_markers(self.detector, gray)
        ids = [i for i in detections if i in self.faces]
        if not ids:
            return None
        raw = {i: detections[i] for i in ids}
        ideal = {i: _undistort(raw[i], intr) for i in ids}
        use_depth = self.settings.use_depth and depth is not None
        all_samples = self._depth_samples(ids, raw, depth, intr) if use_depth else {}
        while True:
            samples = {i: q for i, q in all_samples.items() if i in ids}
            R, t = self._initial_pose(ids, ideal, samples, intr)
            R, t, info = self._refine(ids, ideal, samples, R, t, intr.K)
            worst = max(ids, key=lambda i: info["marker_rms"][i])
            if len(ids) > 1 and info["marker_rms"][worst] > self.settings.max_marker_reproj_px:
                ids = [i for i in ids if i != worst]
                continue
            break
        if info["rms"] > self.settings.max_rms_reproj_px:
            return None
        return MarkerPose(R, t, info["cov"], tuple(sorted(ids)), info["rms"], info["depth_points"])

    # --- initial guess --------------------------------------------------------------------
    def _initial_pose(self, ids: list[int], ideal: dict[int, np.ndarray], samples: dict[int, np.ndarray],
                      intr: Intrinsics):
        """The IPPE candidate that best explains all corners and all depth samples.

        Depth is scored with a truncated quadratic: a candidate on the wrong side of the
        planar ambiguity can reproject a frontal marker's corners perfectly while sitting
        centimetres off in depth, and only depth tells the two apart.
        """
        st = self.settings
        K = intr.K
        obj_all = np.vstack([self._corners_obj[i] for i in ids])
        img_all = np.vstack([ideal[i] for i in ids])
        best, best_err = None, np.inf
        for i in ids:
            face = self.faces[i]
            n, rvecs, tvecs, _ = cv2.solvePnPGeneric(_UNIT_CORNERS * face.side, ideal[i].reshape(4, 1, 2), K, None,
                                                     flags=cv2.SOLVEPNP_IPPE_SQUARE)
            for rvec, tvec in zip(rvecs[:n], tvecs[:n], strict=True):
                R_cm = exp_so3(rvec.ravel())
                R = R_cm @ face.rotation.T  # camera_R_object
                t = tvec.ravel() - R @ face.position
                p = obj_all @ R.T + t
                if np.any(p[:, 2] <= 0):
                    continue
                err = float(np.sum((_project(K, p) - img_all) ** 2)) / st.corner_sigma_px**2
                for j, q in samples.items():
                    f = self.faces[j]
                    r = (q - t) @ (R @ f.rotation[:, 2]) - f.rotation[:, 2] @ f.position
                    err += float(np.sum(np.minimum(r**2, st.depth_gate_m**2))) / st.depth_sigma_m**2
                if err < best_err:
                    best, best_err = (R, t), err
        if best is None:
            raise RuntimeError("no marker gave a pose in front of the camera")
        return best

    # --- depth evidence -------------------------------------------------------------------
    def _depth_samples(self, ids, raw, depth, intr) -> dict[int, np.ndarray]:
        """Marker id -> Nx3 camera-frame points read from depth inside that marker."""
        h, w = depth.shape
        out = {}
        s, r = np.meshgrid(_GRID, _GRID)
        s, r = s.ravel()[:, None], r.ravel()[:, None]
        for i in ids:
            c = raw[i]
            # Bilinear interpolation of the quad's corners (0 TL, 1 TR, 2 BR, 3 BL).
            pts = (1 - s) * (1 - r) * c[0] + s * (1 - r) * c[1] + s * r * c[2] + (1 - s) * r * c[3]
            u = np.clip(np.rint(pts[:, 0]).astype(int), 0, w - 1)
            v = np.clip(np.rint(pts[:, 1]).astype(int), 0, h - 1)
            z = depth[v, u].astype(float)
            ok = np.isfinite(z) & (z > 0)
            if ok.sum() < 4:
                continue
            pix = _undistort(np.column_stack([u, v]).astype(float)[ok], intr)
            z = z[ok]
            K = intr.K
            out[i] = np.column_stack([(pix[:, 0] - K[0, 2]) * z / K[0, 0], (pix[:, 1] - K[1, 2]) * z / K[1, 1], z])
        return out

    # --- joint refinement -----------------------------------------------------------------
    def _refine(self, ids, ideal, samples, R, t, K):
        st = self.settings
        fx, fy = K[0, 0], K[1, 1]
        planes = {i: (self.faces[i].rotation[:, 2], self.faces[i].rotation[:, 2] @ self.faces[i].position)
                  for i in samples}
        for it in range(st.iterations + 1):
            rows, res, wts = [], [], []
            for i in ids:
                X = self._corners_obj[i]
                RX = X @ R.T
                p = RX + t
                uv = _project(K, p)
                e = (uv - ideal[i]).ravel()
                for k in range(4):
                    x, y, z = p[k]
                    du = np.array([fx / z, 0.0, -fx * x / z**2])
                    dv = np.array([0.0, fy / z, -fy * y / z**2])
                    dp_dw = -skew(RX[k])
                    rows += [np.concatenate([du, du @ dp_dw]), np.concatenate([dv, dv @ dp_dw])]
                res.append(e)
                wts.append(np.full(8, 1.0 / st.corner_sigma_px**2))
            n_depth = 0
            for i, q in samples.items():
                n_o, d_o = planes[i]
                n_c = R @ n_o
                r = (q - t) @ n_c - d_o
                keep = np.abs(r) < st.depth_gate_m
                if keep.sum() < 4:
                    continue
                q, r = q[keep], r[keep]
                J = np.column_stack([np.tile(-n_c, (len(q), 1)), np.cross(n_c, q - t)])
                # Huber weights: a few samples on a finger or an edge must not pull the fit.
                a = np.abs(r) / st.depth_sigma_m
                w = np.where(a <= 2.0, 1.0, 2.0 / np.maximum(a, 1e-12)) / st.depth_sigma_m**2
                rows += list(J)
                res.append(r)
                wts.append(w)
                n_depth += len(r)
            J = np.asarray(rows)
            r = np.concatenate(res)
            W = np.concatenate(wts)
            H = J.T @ (J * W[:, None])
            if it == st.iterations:
                break
            delta = -np.linalg.solve(H + 1e-9 * np.eye(6), J.T @ (W * r))
            t = t + delta[:3]
            R = exp_so3(delta[3:]) @ R
            if np.linalg.norm(delta) < 1e-8:
                break
        n_corner = 8 * len(ids)
        corner_res = r[:n_corner].reshape(len(ids), 8)
        marker_rms = {i: float(np.sqrt(np.mean(corner_res[k] ** 2))) for k, i in enumerate(ids)}
        chi2 = float(np.sum(W * r * r))
        dof = max(len(r) - 6, 1)
        cov = np.linalg.inv(H + 1e-12 * np.eye(6)) * max(1.0, chi2 / dof)
        rms = float(np.sqrt(np.mean(corner_res**2)))
        return R, t, {"marker_rms": marker_rms, "rms": rms, "cov": cov, "depth_points": n_depth}
