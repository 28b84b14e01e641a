"""Camera extrinsics from a grid of ArUco markers lying at a known pose in the world.

The board uses its own dictionary (DICT_5X5_50 by default), so it is never mistaken
for the object's DICT_4X4_50 markers. Board frame (as for the object's markers): origin
at the board's centre, x to the right and y up in the printed image, z out of the face.
`solve_extrinsics` finds camera_T_board by PnP over every detected corner and returns
world_T_optical = world_T_board * board_T_camera, the pose perception_node takes as its
camera_translation / camera_quaternion_wxyz. `add_board` puts the same board into a
MuJoCo spec, so the sim can check the whole procedure against its true camera.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import mujoco
import numpy as np

BOARD_TEXTURE_PX_PER_M = 2000.0
BOARD_THICKNESS = 0.001


@dataclass(frozen=True)
class BoardSpec:
    cols: int = 5
    rows: int = 4
    marker_length: float = 0.05  # m, black square's side
    separation: float = 0.012  # m between markers; also the white margin around the grid
    dictionary: int = cv2.aruco.DICT_5X5_50

    @property
    def grid_size(self) -> tuple[float, float]:
        """Width, height (m) of the marker grid."""
        return (self.cols * self.marker_length + (self.cols - 1) * self.separation,
                self.rows * self.marker_length + (self.rows - 1) * self.separation)

    @property
    def outer_size(self) -> tuple[float, float]:
        w, h = self.grid_size
        return w + 2 * self.separation, h + 2 * self.separation

    def cv_board(self) -> cv2.aruco.GridBoard:
        return cv2.aruco.GridBoard((self.cols, self.rows), self.marker_length, self.separation,
                                   cv2.aruco.getPredefinedDictionary(self.dictionary))

    def corner_points(self) -> dict[int, np.ndarray]:
        """Marker id -> 4x3 corners in the board frame, in the detector's corner order."""
        board = self.cv_board()
        w, h = self.grid_size
        out = {}
        for marker_id, pts in zip(board.getIds().ravel(), board.getObjPoints(), strict=True):
            pts = np.asarray(pts, dtype=float).reshape(4, 3)
            # OpenCV's board frame: origin at the grid's top-left, y down. Ours: centre, y up.
            out[int(marker_id)] = np.column_stack([pts[:, 0] - w / 2, h / 2 - pts[:, 1], np.zeros(4)])
        return out

    def image(self, px_per_m: float = BOARD_TEXTURE_PX_PER_M) -> np.ndarray:
        """The printable board with its white margin, HxW uint8."""
        w, h = self.outer_size
        size = (int(round(w * px_per_m)), int(round(h * px_per_m)))
        margin = int(round(self.separation * px_per_m))
        return self.cv_board().generateImage(size, marginSize=margin, borderBits=1)


@dataclass(frozen=True)
class Extrinsics:
    position: np.ndarray  # optical frame origin in world
    rotation: np.ndarray  # world_R_optical
    rms_reproj_px: float
    markers: int


def add_board(spec: mujoco.MjSpec, board: BoardSpec, position: np.ndarray, rotation: np.ndarray) -> None:
    """A thin, visual-only box carrying the board image, its top face at world_T_board."""
    img = board.image()
    rgb = np.repeat(img[:, :, None], 3, axis=2)
    tex = spec.add_texture(name="calibration_board_tex", type=mujoco.mjtTexture.mjTEXTURE_2D, width=img.shape[1],
                           height=img.shape[0], nchannel=3)
    tex.data = rgb.tobytes()  # MuJoCo maps the first row to the face's +y edge, as the image is printed
    mat = spec.add_material(name="calibration_board_mat")
    mat.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = "calibration_board_tex"
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, np.asarray(rotation, dtype=float).flatten())
    w, h = board.outer_size
    spec.worldbody.add_geom(name="calibration_board", type=mujoco.mjtGeom.mjGEOM_BOX,
                            size=[w / 2, h / 2, BOARD_THICKNESS / 2],
                            pos=np.asarray(position, float) - np.asarray(rotation)[:, 2] * BOARD_THICKNESS / 2,
                            quat=quat, material="calibration_board_mat", contype=0, conaffinity=0)


def solve_extrinsics(gray: np.ndarray, K: np.ndarray, dist: np.ndarray, board: BoardSpec,
                     board_position: np.ndarray, board_rotation: np.ndarray, min_markers: int = 4) -> Extrinsics:
    """world_T_optical from one image of the board; ValueError when the board is not seen well enough."""
    params = cv2.aruco.DetectorParameters()
    params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
    detector = cv2.aruco.ArucoDetector(cv2.aruco.getPredefinedDictionary(board.dictionary), params)
    corners, ids, _ = detector.detectMarkers(gray)
    known = board.corner_points()
    pairs = [(known[int(i)], c.reshape(4, 2)) for c, i in zip(corners, (ids if ids is not None else []), strict=False)
             if int(i) in known]
    if len(pairs) < min_markers:
        raise ValueError(f"board seen with {len(pairs)} markers, need at least {min_markers}: is it in view and lit?")
    obj = np.vstack([p[0] for p in pairs])
    img = np.vstack([p[1] for p in pairs]).astype(np.float64)
    ok, rvec, tvec = cv2.solvePnP(obj, img, K, dist, flags=cv2.SOLVEPNP_SQPNP)
    if not ok:
        raise ValueError("PnP failed on the board's corners")
    rvec, tvec = cv2.solvePnPRefineLM(obj, img, K, dist, rvec, tvec)
    projected, _ = cv2.projectPoints(obj, rvec, tvec, K, dist)
    rms = float(np.sqrt(np.mean(np.sum((projected.reshape(-1, 2) - img) ** 2, axis=1))))
    cam_R_board = cv2.Rodrigues(rvec)[0]
    world_R_board = np.asarray(board_rotation, dtype=float)
    world_R_cam = world_R_board @ cam_R_board.T
    world_t_cam = np.asarray(board_position, dtype=float) - world_R_cam @ tvec.ravel()
    return Extrinsics(world_t_cam, world_R_cam, rms, len(pairs))


@dataclass(frozen=True)
class SimBoardView:
    rgb: np.ndarray
    K: np.ndarray
    true_position: np.ndarray  # the rendering camera's optical frame in world
    true_rotation: np.ndarray


def render_sim_board_view(board: BoardSpec, board_position: np.ndarray, board_rotation: np.ndarray,
                          camera_offset: np.ndarray | None = None, camera_rotvec: np.ndarray | None = None,
                          config=None) -> SimBoardView:
    """The scene's camera looking at the board on the table (object moved aside), optionally displaced.

    A displaced camera stands for a real one that is not where the nominal configuration says.
    """
    from drex_ros.core.sim.scene import MUJOCO_TO_OPTICAL, Scene, SceneConfig
    from drex_ros.core.sim.scene_build import build_spec

    config = config or SceneConfig()
    K = Scene(config).camera_model().K
    spec = build_spec(config)
    add_board(spec, board, board_position, board_rotation)
    model = spec.compile()
    data = mujoco.MjData(model)
    cam = model.camera("rgbd").id
    if camera_offset is not None:
        model.cam_pos[cam] += np.asarray(camera_offset, dtype=float)
    if camera_rotvec is not None:
        delta, quat = np.zeros(4), np.zeros(4)
        rv = np.asarray(camera_rotvec, dtype=float)
        mujoco.mju_axisAngle2Quat(delta, rv / (np.linalg.norm(rv) or 1.0), float(np.linalg.norm(rv)))
        mujoco.mju_mulQuat(quat, delta, model.cam_quat[cam].copy())
        model.cam_quat[cam] = quat
    adr = model.joint("object_free").qposadr[0]
    data.qpos[adr:adr + 3] = [2.0, 2.0, 0.1]  # the object must not hide the board
    mujoco.mj_forward(model, data)
    renderer = mujoco.Renderer(model, config.camera.height, config.camera.width)
    try:
        renderer.update_scene(data, camera=cam)
        rgb = renderer.render().copy()
    finally:
        renderer.close()
    rotation = data.cam_xmat[cam].reshape(3, 3) @ MUJOCO_TO_OPTICAL
    return SimBoardView(rgb, K, data.cam_xpos[cam].copy(), rotation)
