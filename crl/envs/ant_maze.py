"""The paper's ant mazes (``ant_umaze``) with D4RL ant physics, on plain MuJoCo (no D4RL, no mujoco-py).

The paper wraps D4RL's ``AntMazeEnv``; neither D4RL nor mujoco-py installs today, so the model is rebuilt here:

* Body: the standard ant (torso sphere r 0.25, four two-segment legs, hip range +-30 deg, ankle 30..70 deg),
  joint armature 1 and damping 1, geoms with density 5, friction (1, 0.5, 0.5), margin 0.01.
* D4RL physics: RK4, timestep 0.02, 5 frames per step (dt 0.1 s), motors with gear 1 and control range +-30;
  actions in [-1, 1] are scaled by 30 (D4RL's normalised-box wrapper).
* Maze: D4RL's U-maze map with cell size 4; walls are boxes 4 x 4 x 2 (D4RL: height 0.5 x cell size).
  The origin is the start cell (1, 1); cell (i, j) is centred at x = 4 (j - 1), y = 4 (i - 1).
* Observation (29): qpos (15: torso xyz, quaternion, 8 joint angles) and qvel (14). Goal space: torso xy.
* Reset (the paper's ``non_zero_reset``): the ant starts from qpos/qvel jittered as in gym's ant (U(+-0.1) and
  0.1 N(0, 1)) at, with probability 1/2, a uniform free cell, otherwise a goal-cell sample. The goal is made the
  paper's way: place the ant at a goal-cell sample, let it settle for 50 zero-action steps, take its xy.
* Goal-cell sample (D4RL ``goal_sampler``): a uniformly chosen goal cell, the cell centre plus
  U(0, 1) + U(0, 0.5) on each axis. Free-cell reset sample (D4RL ``_get_reset_location``): plus U(0, 1).
* Success: torso xy within 0.5 of the goal. Episodes last 700 steps (umaze).

What may differ from the original: D4RL's XML also sets the contact solver defaults of mujoco 2.0 and draws the
maze at a different colour; contact dynamics follow current MuJoCo. See docs/ENVIRONMENTS.md.
"""

from __future__ import annotations

import numpy as np

from crl.envs.task import GoalTask, distance, require

# D4RL / the paper's U-maze: 1 = wall, 'r' = start, 'g' = goal cell.
U_MAZE = [
    [1, 1, 1, 1, 1],
    [1, "r", "g", "g", 1],
    [1, 1, 1, "g", 1],
    [1, "g", "g", "g", 1],
    [1, 1, 1, 1, 1],
]
MAPS = {"umaze": (U_MAZE, 700)}
CELL = 4.0
ACTION_SCALE = 30.0
FRAME_SKIP = 5
INIT_QPOS = np.array([0.0, 0.0, 0.55, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, -1.0, 0.0, -1.0, 0.0, 1.0])

_LEGS = [  # (name, hip direction, ankle axis, ankle range)
    ("1", (0.2, 0.2), "-1 1 0", "30 70"),
    ("2", (-0.2, 0.2), "1 1 0", "-70 -30"),
    ("3", (-0.2, -0.2), "-1 1 0", "-70 -30"),
    ("4", (0.2, -0.2), "1 1 0", "30 70"),
]


def ant_maze_xml(maze_map: list) -> str:
    """The MJCF of the D4RL-physics ant in ``maze_map`` (walls as boxes; see the module docstring)."""
    legs = []
    for name, (dx, dy), ankle_axis, ankle_range in _LEGS:
        legs.append(f"""
      <body name="leg_{name}" pos="0 0 0">
        <geom name="aux_{name}_geom" type="capsule" size="0.08" fromto="0 0 0 {dx} {dy} 0"/>
        <body name="aux_{name}" pos="{dx} {dy} 0">
          <joint name="hip_{name}" type="hinge" pos="0 0 0" axis="0 0 1" range="-30 30"/>
          <geom name="leg_{name}_geom" type="capsule" size="0.08" fromto="0 0 0 {dx} {dy} 0"/>
          <body pos="{dx} {dy} 0">
            <joint name="ankle_{name}" type="hinge" pos="0 0 0" axis="{ankle_axis}" range="{ankle_range}"/>
            <geom name="ankle_{name}_geom" type="capsule" size="0.08" fromto="0 0 0 {2 * dx} {2 * dy} 0"/>
          </body>
        </body>
      </body>""")
    walls = []
    for i, row in enumerate(maze_map):
        for j, cell in enumerate(row):
            if cell == 1:
                x, y = (j - 1) * CELL, (i - 1) * CELL
                walls.append(f'    <geom name="wall_{i}_{j}" type="box" pos="{x} {y} {CELL / 4}" '
                             f'size="{CELL / 2} {CELL / 2} {CELL / 4}" conaffinity="1" contype="1" material="wall"/>')
    motors = "\n".join(
        f'    <motor joint="{kind}_{name}" gear="1" ctrllimited="true" ctrlrange="-30 30"/>'
        for name in ("4", "1", "2", "3") for kind in ("hip", "ankle"))
    return f"""<mujoco model="ant_maze">
  <compiler angle="degree" coordinate="local" inertiafromgeom="true"/>
  <option timestep="0.02" integrator="RK4"/>
  <default>
    <joint limited="true" armature="1" damping="1"/>
    <geom condim="3" conaffinity="0" margin="0.01" friction="1 0.5 0.5" density="5.0" rgba="0.8 0.6 0.4 1"/>
  </default>
  <asset>
    <texture name="grid" type="2d" builtin="checker" rgb1=".1 .2 .3" rgb2=".2 .3 .4" width="100" height="100"/>
    <material name="grid" texture="grid" texrepeat="1 1" texuniform="true"/>
    <material name="wall" rgba=".7 .5 .3 1"/>
  </asset>
  <worldbody>
    <light directional="true" pos="0 0 10" dir="0 0 -1" diffuse=".8 .8 .8"/>
    <geom name="floor" type="plane" pos="0 0 0" size="40 40 0.1" conaffinity="1" material="grid"/>
{chr(10).join(walls)}
    <body name="torso" pos="0 0 0.75">
      <geom name="torso_geom" type="sphere" size="0.25" pos="0 0 0"/>
      <joint name="root" type="free" limited="false" pos="0 0 0" margin="0.01" armature="0" damping="0"/>{"".join(legs)}
    </body>
  </worldbody>
  <actuator>
{motors}
  </actuator>
</mujoco>
"""


class AntMazeTask(GoalTask):
    """``ant_umaze``: see the module docstring."""

    obs_dim = 29
    goal_dim = 2
    goal_start, goal_end = 0, 2
    act_dim = 8
    success_threshold = 0.5

    def __init__(self, map_name: str = "umaze"):
        if map_name not in MAPS:
            raise ValueError(f"unknown ant maze {map_name!r}; known: {', '.join(MAPS)}")
        self.mujoco = require("mujoco", "robotics")
        maze_map, self.horizon = MAPS[map_name]
        self.model = self.mujoco.MjModel.from_xml_string(ant_maze_xml(maze_map))
        self.data = self.mujoco.MjData(self.model)
        cells = [(i, j, c) for i, row in enumerate(maze_map) for j, c in enumerate(row) if c != 1]
        self.free_cells = np.array([(i, j) for i, j, _ in cells], float)
        self.goal_cells = np.array([(i, j) for i, j, c in cells if c == "g"], float)
        self.rng = np.random.default_rng(0)
        self._goal = np.zeros(2)

    def cell_corner(self, ij: np.ndarray) -> np.ndarray:
        """xy of cell (i, j)'s centre (D4RL's ``_rowcol_to_xy`` without noise)."""
        return np.array([(ij[1] - 1) * CELL, (ij[0] - 1) * CELL])

    def sample_goal_xy(self) -> np.ndarray:
        """D4RL's goal sampler: a goal cell + U(0, 1) + U(0, 0.5) per axis, clipped at 0 from below."""
        cell = self.goal_cells[self.rng.integers(len(self.goal_cells))]
        xy = self.cell_corner(cell) + self.rng.uniform(0, 0.25 * CELL, 2) + self.rng.uniform(0, 0.5, 2) * 0.25 * CELL
        return np.maximum(xy, 0.0)

    def sample_reset_xy(self) -> np.ndarray:
        """The paper's reset location: D4RL's free-cell sample or a goal-cell sample, each with probability 1/2."""
        if self.rng.random() < 0.5:
            cell = self.free_cells[self.rng.integers(len(self.free_cells))]
            return np.maximum(self.cell_corner(cell) + self.rng.uniform(0, 0.5, 2) * 0.5 * CELL, 0.0)
        return self.sample_goal_xy()

    def _reset_body(self, xy: np.ndarray) -> None:
        mj = self.mujoco
        mj.mj_resetData(self.model, self.data)
        qpos = INIT_QPOS + self.rng.uniform(-0.1, 0.1, self.model.nq)
        qpos[:2] = xy
        self.data.qpos[:] = qpos
        self.data.qvel[:] = 0.1 * self.rng.standard_normal(self.model.nv)
        mj.mj_forward(self.model, self.data)

    def _simulate(self, ctrl: np.ndarray) -> None:
        self.data.ctrl[:] = ctrl
        self.mujoco.mj_step(self.model, self.data, nstep=FRAME_SKIP)

    def _obs(self) -> np.ndarray:
        return np.concatenate([self.data.qpos[:15], self.data.qvel[:14]]).astype(np.float32)

    def reset(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        self.rng = np.random.default_rng(seed)
        self._reset_body(self.sample_goal_xy())
        for _ in range(50):
            self._simulate(np.zeros(self.act_dim))
        self._goal = self.data.qpos[:2].copy()
        self._reset_body(self.sample_reset_xy())
        return self._obs(), self._goal.astype(np.float32)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, bool, float]:
        self._simulate(ACTION_SCALE * np.clip(action, -1.0, 1.0))
        dist = distance(self.data.qpos[:2], self._goal)
        return self._obs(), dist <= self.success_threshold, dist
